#!/usr/bin/env bash
# A contact sheet of `cover` crops of the corpus photos, one row per photo:
# our centre crop, our `gravity=smart`, and libvips' `--smartcrop attention`
# beside them, for people to judge. Writes docs/smart-crop.jpg (or $1).
# SHEET_PHOTOS: how many photos (default 10, every other one of the corpus).
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$REPO_ROOT/scripts/install-system-packages.sh"
cd "$REPO_ROOT"
CORPUS_DIR=$(bash scripts/corpus.sh)
out=$(realpath -m "${1:-docs/smart-crop.jpg}")
size=${SHEET_SIZE:-200}
cargo build --release --quiet --workspace --bins # the one build every script shares
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mapfile -t photos < <(find "$CORPUS_DIR/jpeg" -name '*0_*.jpg' | sort | head -n "${SHEET_PHOTOS:-10}")
log "crop sheet: ${#photos[@]} photos, ${size}×${size}"
for crop in centre attention; do
  mkdir -p "$work/ours-$crop"
  "$target/release/resize-bench" --ours-driver --width "$size" --height "$size" --format jpeg --quality 85 \
    --crop "$crop" --passes 1 --out "$work/ours-$crop" "${photos[@]}" >/dev/null
done
mkdir -p "$work/vips"
vipsthumbnail --size="${size}x${size}" --smartcrop=attention --output="$work/vips/%s.jpg[Q=85,strip]" "${photos[@]}"
tiles=()
for p in "${photos[@]}"; do
  stem=$(basename "$p" .jpg)
  tiles+=("$work/ours-centre/$stem.jpeg" "$work/ours-attention/$stem.jpeg" "$work/vips/$stem.jpg")
done
vips arrayjoin "${tiles[*]}" "$out[Q=85,strip]" --across 3 --shim 6 --background 255
log "crop sheet: $out (columns: ours centre, ours gravity=smart, libvips attention)"

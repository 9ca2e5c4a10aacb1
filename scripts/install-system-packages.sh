#!/usr/bin/env bash
# Debian packages the build and tests need: nasm and cmake for libjpeg-turbo's
# SIMD code, python3-venv for the venvs of the interoperability test and benchmarks,
# valgrind for the memory check of the worker's C decoders (stage 20-memcheck),
# libfaketime for the chaos suite's api-server with a skewed clock, iptables
# for its partitions and degraded links; libheif-dev, which the worker links
# for AVIF output and AVIF/HEIC input (its AV1 and HEVC codecs come with it).
# Idempotent: does nothing when everything is present.
set -euo pipefail
source "$(dirname "$0")/env.sh"
need=()
command -v nasm >/dev/null || need+=(nasm)
command -v cmake >/dev/null || need+=(cmake)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v valgrind >/dev/null || need+=(valgrind)
dpkg -s libfaketime >/dev/null 2>&1 || need+=(libfaketime)
command -v iptables >/dev/null || need+=(iptables)
dpkg -s libheif-dev >/dev/null 2>&1 || need+=(libheif-dev)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

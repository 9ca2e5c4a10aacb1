"""Pillow(-SIMD) peer for resize-bench: one process over in-memory inputs.

Usage: python pillow.py --width W --height H --format jpeg|webp|png --quality Q [--crop centre] --passes N [--out DIR] FILE...
Prints `elapsed=<seconds> cpu=<seconds> count=<conversions>` for the timed passes.

JPEGs are opened with draft(), libjpeg-turbo's DCT scaling to the smallest
size that still covers the target, then resized with Lanczos: Pillow's
fastest faithful thumbnail path.
"""

import argparse
import io
import os
import time

from PIL import Image

SAVE = {
    "jpeg": lambda im, out, q: im.save(out, "JPEG", quality=q),
    "webp": lambda im, out, q: im.save(out, "WEBP", quality=q),
    "png": lambda im, out, q: im.save(out, "PNG"),
}


def fit_inside(w, h, box_w, box_h):
    # The same rounding as the worker's planner, so every tool writes the same size.
    scale = min(box_w / w, box_h / h)
    return min(max(round(w * scale), 1), box_w), min(max(round(h * scale), 1), box_h)


def convert(data, args):
    im = Image.open(io.BytesIO(data))
    if args.crop == "centre":
        # Cover: the box's aspect cut from the middle, as ImageOps.fit does.
        scale = max(args.width / im.width, args.height / im.height)
        size, draft = (args.width, args.height), (round(im.width * scale), round(im.height * scale))
    else:
        size = draft = fit_inside(im.width, im.height, args.width, args.height)
    full = im.size
    if im.format == "JPEG":
        im.draft("RGB", draft)
    keep_alpha = args.format != "jpeg" and im.mode in ("RGBA", "LA", "P")
    mode = "RGBA" if keep_alpha else "RGB"
    if im.mode != mode:  # convert() to the same mode is a full copy
        im = im.convert(mode)
    box = None
    if args.crop == "centre":
        # The crop in the drafted image's pixels.
        sx, sy = im.width / full[0], im.height / full[1]
        cw, ch = min(args.width / scale * sx, im.width), min(args.height / scale * sy, im.height)
        left, top = (im.width - cw) / 2, (im.height - ch) / 2
        box = (left, top, left + cw, top + ch)
    im = im.resize(size, Image.LANCZOS, box=box)
    out = io.BytesIO()
    SAVE[args.format](im, out, args.quality)
    return out.getvalue()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--format", choices=sorted(SAVE), required=True)
    p.add_argument("--quality", type=int, default=80)
    p.add_argument("--passes", type=int, default=1)
    p.add_argument("--crop", choices=["centre"])
    p.add_argument("--out")
    p.add_argument("files", nargs="+")
    args = p.parse_args()
    inputs = []
    for f in args.files:
        with open(f, "rb") as fh:
            inputs.append(fh.read())
    count = 0
    t0, cpu0 = time.perf_counter(), time.process_time()
    for n in range(args.passes):
        for f, data in zip(args.files, inputs):
            out = convert(data, args)
            if args.out and n == 0:
                name = os.path.splitext(os.path.basename(f))[0] + "." + args.format
                with open(os.path.join(args.out, name), "wb") as fh:
                    fh.write(out)
            count += 1
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(f"elapsed={elapsed} cpu={cpu} count={count}")


if __name__ == "__main__":
    main()

"""Make the pictures and numbers of the README's "Learning with minivgg" section.

    python scripts/make_learning_pictures.py [--size 96] [--iters 200] [--inspect-size 192]

Runs, through the command line exactly as documented (images from ../shared/images, outputs in a
temporary folder):

    minivgg reconstruct tubingen.jpg --layers block1_conv2,…,block5_conv2 --size 96 --iters 200 -o DIR
    minivgg inspect tubingen.jpg starry_night.jpg --size 192 -o DIR

prints the PSNR table (markdown) and the wall time of each command, and writes
docs/reconstruct_sheet.jpg and docs/inspect_summary.jpg (at most 512 px on the long side).
"""

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from minivgg.cli import main as minivgg
from minivgg.run.image import load_image, longest_side_shape, resize_longest
from minivgg.tools.reconstruct import psnr

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "images"
LAYERS = ["block1_conv2", "block2_conv2", "block3_conv2", "block4_conv2", "block5_conv2"]


def small_jpeg(src: Path, dst: Path, longest: int = 512) -> None:
    """``src`` as a JPEG of at most ``longest`` px on its long side (Lanczos), well under 200 kB."""
    im = Image.open(src).convert("RGB")
    h, w = longest_side_shape((im.height, im.width), min(longest, max(im.size)))
    buf = io.BytesIO()
    im.resize((w, h), Image.LANCZOS).save(buf, "JPEG", quality=85)
    dst.write_bytes(buf.getvalue())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--inspect-size", type=int, default=192)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rec, ins = Path(tmp) / "reconstruct", Path(tmp) / "inspect"
        t0 = time.perf_counter()
        assert (
            minivgg(
                [
                    "reconstruct",
                    str(SHARED / "tubingen.jpg"),
                    "--layers",
                    ",".join(LAYERS),
                    "--size",
                    str(args.size),
                    "--iters",
                    str(args.iters),
                    "-o",
                    str(rec),
                    "--quiet",
                ]
            )
            == 0
        )
        t_rec = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert (
            minivgg(
                [
                    "inspect",
                    str(SHARED / "tubingen.jpg"),
                    str(SHARED / "starry_night.jpg"),
                    "--size",
                    str(args.inspect_size),
                    "-o",
                    str(ins),
                    "--quiet",
                ]
            )
            == 0
        )
        t_ins = time.perf_counter() - t0
        image = resize_longest(load_image(SHARED / "tubingen.jpg"), args.size)
        print("| layer | PSNR (dB) |\n|---|---:|")
        for layer in LAYERS:  # from the saved (rounded) PNGs, as a reader would measure them
            print(f"| `{layer}` | {psnr(load_image(rec / f'{layer}.png'), image):.1f} |")
        small_jpeg(rec / "sheet.png", ROOT / "docs" / "reconstruct_sheet.jpg")
        small_jpeg(ins / "summary.png", ROOT / "docs" / "inspect_summary.jpg")
    print(
        f"reconstruct: {t_rec:.0f} s for {len(LAYERS)} layers; inspect: {t_ins:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()

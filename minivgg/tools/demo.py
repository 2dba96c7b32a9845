"""``minivgg demo``: a stylized image and a report from inputs every machine has.

The content photograph comes with scikit-image's wheel (the ``demo`` extra), so the demo needs no
network beyond the package registry: content ``chelsea`` (a cat), style the sample painting
``starry-night`` shipped with minivgg (``minivgg samples``: Van Gogh's The Starry Night). Weights are fetched into the cache first when they are
missing. 256 px and 80 L-BFGS iterations finish in well under 3 minutes on a 2-core CPU; at that
small size the ``gatys`` style term (size-independent) would swamp the content term (which grows
with the pixel count), so the demo uses ``style_weight=1e3`` instead of the 512 px default 1e4.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import UserError, WeightsError
from ..network import weights
from ..run.image import load_image, sample_images, save_image
from ..run.samples import sample_path
from ..run.transfer import RunOptions, stylize

DEMO_CONTENT = "chelsea"
DEMO_STYLE = "starry-night"  # a sample painting of ``minivgg.run.samples``
DEMO_STYLE_WEIGHT = 1e3


def add_cli(sub) -> None:
    p = sub.add_parser(
        "demo", help="stylize a sample photograph with The Starry Night (no arguments needed)"
    )
    p.add_argument(
        "-o", "--outdir", default="minivgg-demo", help="output folder (default ./minivgg-demo)"
    )
    p.add_argument("--size", type=int, default=256, help="longest side (default 256)")
    p.add_argument("--iters", type=int, default=80, help="L-BFGS iterations (default 80)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_demo)


def run_demo(args) -> int:
    """Write the two sample pictures, fetch the weights if needed, and stylize at ``--size``/``--iters``."""
    for flag, value in (("--size", args.size), ("--iters", args.iters)):
        if value < 1:
            raise UserError(f"{flag} must be a positive whole number, got {value}")
    outdir = Path(args.outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot use '{outdir}' as the output folder ({exc.strerror or exc})"
        ) from None
    try:
        weights.load_cached("vgg16")
    except WeightsError:
        if not args.quiet:
            print("VGG16 weights are not cached yet: fetching them (once)", file=sys.stderr)
        weights.fetch("vgg16", progress=not args.quiet)
    samples = sample_images([DEMO_CONTENT])
    content_path, style_path = outdir / "content.png", outdir / "style.png"
    save_image(content_path, samples[DEMO_CONTENT])
    save_image(style_path, load_image(sample_path(DEMO_STYLE), what="style"))
    opts = RunOptions(
        output=str(outdir / "stylized.png"),
        preset="gatys",
        size=args.size,
        iters=args.iters,
        log=str(outdir / "log.json"),
        report=str(outdir / "report.png"),
        quiet=args.quiet,
    )
    log = stylize(str(content_path), [str(style_path)], opts, {"style_weight": DEMO_STYLE_WEIGHT})
    print(
        f"demo done in {log['seconds']:.0f} s: {os.fspath(outdir / 'stylized.png')} "
        f"(report {os.fspath(outdir / 'report.png')}, log {os.fspath(outdir / 'log.json')})"
    )
    return 0

"""``minivgg reconstruct``: the parser and the glue from flags to ``minivgg.tools.reconstruct.reconstruct_files``."""

from __future__ import annotations

import os

from ..run.transfer import RunOptions
from ..tools.reconstruct import MODES, reconstruct_files
from .transfer import add_conv_argument


def add_cli(sub) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="reconstruct an image from one layer's features or Gram matrices "
        "(what each layer keeps; Gatys et al. Fig. 1)",
    )
    p.add_argument("image", help="the image to reconstruct")
    p.add_argument(
        "--layers",
        required=True,
        help="comma-separated layer names, e.g. block1_conv2,block4_conv2; one reconstruction each",
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        default="content",
        help="content: match that layer's features; style: match the Gram matrices of every style "
        "layer up to and including it (default content)",
    )
    p.add_argument(
        "-o", "--outdir", required=True, help="output folder: <layer>.png per layer and sheet.png"
    )
    p.add_argument("--size", type=int, default=256, help="longest side in pixels (default 256)")
    p.add_argument(
        "--iters", type=int, default=200, help="L-BFGS iterations per layer (default 200)"
    )
    p.add_argument(
        "--init", default="noise", help="noise (uniform in [0, 255), the default) or an image path"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the noise")
    p.add_argument("--weights", help="a VGG16 weights file (default: the verified cache)")
    add_conv_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_reconstruct)


def _cmd_reconstruct(args) -> int:
    opts = RunOptions(
        output=args.outdir,
        size=args.size,
        iters=args.iters,
        init=args.init,
        seed=args.seed,
        weights=args.weights,
        quiet=args.quiet,
        conv=args.conv,
    )
    results = reconstruct_files(args.image, args.layers, args.outdir, opts, mode=args.mode)
    for r in results:
        psnr = f", PSNR {r.psnr:.2f} dB" if r.psnr is not None else ""
        print(
            f"{r.layer}: loss {r.loss:.6g} after {r.iterations} iterations ({r.seconds:.1f} s){psnr}"
        )
    print(f"wrote {len(results)} reconstructions and {os.path.join(args.outdir, 'sheet.png')}")
    return 0

"""``minivgg inspect``: the parser (the objective's flags are ``minivgg transfer``'s) and the glue to
``minivgg.tools.inspection.inspect_files``."""

from __future__ import annotations

import os

from ..run.transfer import RunOptions
from ..tools.inspection import inspect_files
from .transfer import add_objective_arguments, overrides_from_args


def add_cli(sub) -> None:
    p = sub.add_parser(
        "inspect",
        help="picture one evaluation of the objective: each term's pixel gradient, "
        "gradient norms, Gram matrices, feature maps",
    )
    p.add_argument("content", help="content image")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s)")
    p.add_argument(
        "-o",
        "--outdir",
        default="minivgg-inspect",
        help="output folder (default ./minivgg-inspect)",
    )
    p.add_argument(
        "--at",
        help="the image to evaluate the objective at, e.g. a transfer's result (default: the content)",
    )
    add_objective_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no notes on stderr")
    p.set_defaults(func=_cmd_inspect)


def _cmd_inspect(args) -> int:
    opts = RunOptions(
        output=args.outdir,
        preset=args.preset,
        size=args.size,
        style_scale=args.style_scale,
        weights=args.weights,
        flip_kernels=args.flip_kernels,
        device=args.device,
        max_pixels=args.max_pixels,
        quiet=True,
        conv=args.conv,
    )
    result = inspect_files(
        args.content, args.styles, args.outdir, opts, overrides_from_args(args), at=args.at
    )
    terms = ", ".join(f"{k} {v:.6g}" for k, v in result.terms.items())
    print(f"L(x) at {args.at or args.content}: {terms}")
    print(
        f"wrote {len(result.grads)} gradient pictures and {os.path.join(args.outdir, 'summary.png')}"
    )
    return 0

"""``minivgg transfer`` and ``minivgg presets``: the parsers and the glue from flags to
``minivgg.run.transfer.stylize`` (``RunOptions`` plus the objective's overrides). The objective's flags
(``add_objective_arguments``, ``overrides_from_args``) are shared with ``minivgg inspect``; the run's
(``add_run_arguments``, ``options_from_args``) with ``minivgg sweep`` and ``minivgg batch``."""

from __future__ import annotations

import argparse
import sys

from ..engine.ops import CONV_ALGORITHMS
from ..errors import UserError
from ..run.color import MATCH_MODES
from ..run.transfer import OPTIMIZERS, RunOptions, stylize
from ..style.presets import PRESETS, resolve_settings
from ..style.regions import MASK_MODES


def _ints(text):
    """``300`` or ``300,100,100`` (argparse type: a bad value is a usage error, exit 2)."""
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected whole numbers separated by commas, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one whole number")
    return values if len(values) > 1 else values[0]


def _number(text):
    """An int, else a float, else the text itself: the objective judges the value (one UserError sentence)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _paths(text):
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _floats(text):
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"expected comma-separated numbers, got {text!r}") from None


def add_objective_arguments(p) -> None:
    """The flags that define the objective, its inputs and the network (``transfer`` and ``inspect``)."""
    p.add_argument(
        "--preset", default="gatys", help=f"loss formulation: {', '.join(PRESETS)} (default gatys)"
    )
    p.add_argument(
        "--size", type=int, help="longest side of the output in pixels (default: the preset's)"
    )
    p.add_argument(
        "--style-scale",
        type=float,
        help="style longest side as a multiple of --size "
        "(default: style resized to the content's size)",
    )
    p.add_argument("--content-weight", type=float)
    p.add_argument("--style-weight", type=float)
    p.add_argument("--tv-weight", type=float)
    p.add_argument("--content-layers", help="comma-separated layer names, e.g. block4_conv2")
    p.add_argument("--style-layers", help="comma-separated layer names")
    p.add_argument("--style-layer-weights", help="comma-separated, one per style layer")
    p.add_argument("--style-blend-weights", help="comma-separated, one per style image")
    p.add_argument("--pooling", choices=["avg", "max"])
    p.add_argument("--weights", help="a VGG weights file (default: the verified cache)")
    p.add_argument(
        "--flip-kernels",
        choices=["yes", "no", "auto"],
        help="kernel orientation of a Theano-era --weights file (default: detected from the manifest)",
    )
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--max-pixels", type=int, help="largest input image accepted (pixels)")
    add_conv_argument(p)


def add_conv_argument(p) -> None:
    """``--conv``: the convolution algorithm of every layer (``ops.CONV_ALGORITHMS``)."""
    p.add_argument(
        "--conv",
        choices=CONV_ALGORITHMS,
        default="auto",
        help="convolution algorithm: winograd (F(4x4,3x3) on the CPU, F(2x2,3x3) on CuPy), "
        "im2col (patches + GEMM) or auto (default: Winograd for every 3x3 conv)",
    )


def add_run_arguments(p) -> None:
    """The run's flags besides the objective's and the outputs' (``transfer``, ``sweep``, ``batch``)."""
    p.add_argument(
        "--iters",
        type=_ints,
        help="iterations: one value, or one per scale (default: the preset's)",
    )
    p.add_argument(
        "--scales",
        type=_ints,
        help="coarse to fine: the longest side of every scale, e.g. 256,362,512 "
        "(the last is the output's)",
    )
    p.add_argument(
        "--min-scale",
        type=int,
        help="coarse to fine in √2 steps from this longest side up to --size",
    )
    p.add_argument(
        "--single-scale",
        action="store_true",
        help="one scale at --size, no coarse scales first (the default route of gatys starts at "
        "--size/4 and --size/2: the same look, sooner)",
    )
    p.add_argument(
        "--all-iters",
        action="store_true",
        help="run every iteration (no convergence stop; gatys stops when the loss has stopped falling)",
    )
    p.add_argument(
        "--stop-tol",
        type=float,
        help="convergence stop: end when the loss fell by less than this "
        "fraction over the last --stop-window iterations (default: the preset's)",
    )
    p.add_argument(
        "--stop-window",
        type=int,
        metavar="N",
        help="the iterations the convergence stop looks back over (default: the preset's)",
    )
    p.add_argument(
        "--history",
        type=int,
        metavar="M",
        help="L-BFGS memory: (s, y) pairs kept (default: the preset's)",
    )
    p.add_argument(
        "--original-colors",
        action="store_true",
        help="keep the content's colours (chroma) in the result",
    )
    p.add_argument(
        "--luminance-only",
        action="store_true",
        help="transfer luminance only: optimise grey images, then put the content's colours back",
    )
    p.add_argument(
        "--match-color-histogram",
        nargs="?",
        const="pca",
        choices=MATCH_MODES,
        metavar="chol|pca|sym",
        help="map each style's colours to the content's mean and covariance first (default pca)",
    )
    p.add_argument(
        "--content-masks",
        help="comma-separated greyscale masks, one per style image: where it applies",
    )
    p.add_argument(
        "--style-masks",
        help="comma-separated masks: where in each style image its statistics are taken",
    )
    p.add_argument(
        "--mask-mode",
        choices=MASK_MODES,
        default="simple",
        help="how masks reach each layer: simple (resized), inside or all (default simple)",
    )
    p.add_argument(
        "--tile-size",
        type=_number,
        metavar="T",
        help="evaluate the loss on tiles of TxT pixels (plus a halo): the same loss and gradient in memory "
        "bounded by the tile, for print-size outputs; a multiple of the deepest layer's stride "
        "(16 for most presets, 32 for cntk; rounded down)",
    )
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        help="default: the preset's; lbfgs-device keeps L-BFGS on the --device (no per-step copies)",
    )
    p.add_argument("--lr", type=float, help="Adam learning rate, in the preset's units")
    p.add_argument(
        "--init", help="content, random, style, noise, or an image path (default: the preset's)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of random initialisation")
    p.add_argument(
        "--save-every",
        type=int,
        default=0,
        metavar="N",
        help="write OUT_0100.png … every N iterations",
    )


def add_cli(sub) -> None:
    p = sub.add_parser("transfer", help="stylize CONTENT with one or more STYLE images")
    p.add_argument("content", help="content image")
    p.add_argument(
        "styles",
        nargs="+",
        metavar="style",
        help="style image(s), or the name of a sample painting (see 'minivgg samples')",
    )
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, …)")
    add_objective_arguments(p)
    add_run_arguments(p)
    p.add_argument("--log", help="write a JSON log of settings and per-iteration losses")
    p.add_argument("--report", help="write a report picture (inputs, result, loss curves)")
    p.add_argument("--resume", help="continue from a checkpoint OUT.ckpt.npz")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_transfer)

    p = sub.add_parser("presets", help="list the presets with their layers and weights")
    p.set_defaults(func=_cmd_presets)


def overrides_from_args(args) -> dict:
    """The objective's overrides from the flags of ``add_objective_arguments`` (``args.styles``: the style paths)."""
    ov = {
        "content_weight": args.content_weight,
        "style_weight": args.style_weight,
        "tv_weight": args.tv_weight,
        "pooling": args.pooling,
    }
    if args.content_layers:
        ov["content_layers"] = tuple(t.strip() for t in args.content_layers.split(",") if t.strip())
    if args.style_layers:
        ov["style_layers"] = tuple(t.strip() for t in args.style_layers.split(",") if t.strip())
    if args.style_layer_weights:
        ov["style_layer_weights"] = tuple(_floats(args.style_layer_weights))
    if args.style_blend_weights:
        ov["style_blend_weights"] = _floats(args.style_blend_weights)
        if len(ov["style_blend_weights"]) != len(args.styles):
            raise UserError(
                f"--style-blend-weights has {len(ov['style_blend_weights'])} values for "
                f"{len(args.styles)} style images"
            )
    return {k: v for k, v in ov.items() if v is not None}


def options_from_args(args, output, log=None, report=None, resume=None, quiet=None):
    """``(RunOptions, overrides)`` of one run from the flags of ``add_objective_arguments`` and
    ``add_run_arguments``; the outputs are given (``sweep``/``batch`` choose them per job)."""
    opts = RunOptions(
        output=output,
        preset=args.preset,
        size=args.size,
        style_scale=args.style_scale,
        iters=args.iters,
        optimizer=args.optimizer,
        lr=args.lr,
        init=args.init,
        seed=args.seed,
        weights=args.weights,
        flip_kernels=args.flip_kernels,
        device=args.device,
        save_every=args.save_every,
        log=log,
        report=report,
        quiet=args.quiet if quiet is None else quiet,
        max_pixels=args.max_pixels,
        resume=resume,
        conv=args.conv,
        scales=args.scales,
        min_scale=args.min_scale,
        single_scale=args.single_scale,
        all_iters=args.all_iters,
        original_colors=args.original_colors,
        luminance_only=args.luminance_only,
        match_color=args.match_color_histogram,
        content_masks=_paths(args.content_masks),
        style_masks=_paths(args.style_masks),
        mask_mode=args.mask_mode,
        tile_size=args.tile_size,
    )
    overrides = overrides_from_args(args)
    for key in ("stop_tol", "stop_window", "history"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    return opts, overrides


def _cmd_transfer(args) -> int:
    opts, overrides = options_from_args(
        args, args.output, log=args.log, report=args.report, resume=args.resume
    )
    log = stylize(args.content, args.styles, opts, overrides, argv=sys.argv[1:])
    print(f"wrote {args.output} (final loss {log['final_loss']:.6g}, {log['seconds']:.1f} s)")
    return 0


def _cmd_presets(args) -> int:
    for name, p in PRESETS.items():
        s = resolve_settings(name, {})
        print(f"{name}: {p.source}")
        print(
            f"  network {p.arch}, {p.pooling} pooling; optimizer {p.optimizer}, {p.iters} iterations"
            + (f" in rounds of {p.round_evals}" if p.round_evals else "")
            + f", init {p.init}, size {p.size}"
        )
        cl = ", ".join(
            f"{t}×{w:.3g}" for t, w in zip(s["content_layers"], s["content_layer_weights"])
        )
        sl = ", ".join(f"{t}×{w:.3g}" for t, w in zip(s["style_layers"], s["style_layer_weights"]))
        print(f"  content_weight {p.content_weight:g} ({p.content_norm}): {cl}")
        print(f"  style_weight {p.style_weight:g} (gram {p.gram}, norm {p.style_norm}): {sl}")
        print(f"  tv_weight {p.tv_weight:g} ({p.tv})")
    return 0

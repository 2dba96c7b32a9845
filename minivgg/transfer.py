"""Style transfer end to end: ``minivgg transfer``, ``minivgg presets`` and ``minivgg demo``.

``stylize`` wires the pieces: images in, ``Objective`` built, optimiser run with a progress bar,
snapshots, a JSON log and a report picture; Ctrl-C/SIGTERM writes the best image so far and a
checkpoint, and prints the command that resumes it.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import numpy as np

from .errors import UserError
from .objective import PRESETS, Objective, resolve_settings


# ------------------------------------------------------------------------------------- options

@dataclasses.dataclass
class RunOptions:
    """What to run besides the objective: sizes, optimiser, outputs. ``None`` means the preset's default."""
    output: str
    preset: str = "gatys"
    size: int | None = None
    style_scale: float | None = None
    iters: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    init: str | None = None
    seed: int = 0
    weights: str | None = None
    flip_kernels: str | None = None
    device: str = "cpu"
    save_every: int = 0
    log: str | None = None
    report: str | None = None
    quiet: bool = False
    max_pixels: int | None = None
    resume: str | None = None


def _positive(name, v):
    if v is not None and (not math.isfinite(v) or v <= 0):
        raise UserError(f"--{name.replace('_', '-')} must be a positive number, got {v}")


def _init_image(init, content, styles, seed, mean_rgb, max_pixels):
    """The starting image (H, W, 3) float64 for an ``--init`` choice."""
    from .image import load_image, resize_to
    h, w = content.shape[:2]
    rng = np.random.default_rng(seed)
    if init == "content":
        return content.astype(np.float64)
    if init == "style":
        return resize_to(styles[0], (h, w)).astype(np.float64)
    if init == "random":
        return rng.uniform(0, 255, content.shape)
    if init == "noise":  # the Keras/Harvard scripts: U[0, 255) − 128 in network-input units
        return rng.uniform(0, 255, content.shape) - 128 + np.asarray(mean_rgb)
    if os.path.exists(init):
        return resize_to(load_image(init, max_pixels=max_pixels, what="init"), (h, w)).astype(np.float64)
    raise UserError(f"--init must be content, random, style, noise or an image path; {init!r} is none of these")


def _snapshot_path(output: Path, iteration: int) -> Path:
    return output.with_name(f"{output.stem}_{iteration:04d}{output.suffix}")


# ---------------------------------------------------------------------------------------- run

def stylize(content_path, style_paths, opts: RunOptions, overrides: dict, argv=None) -> dict:
    """Run one style transfer from files to ``opts.output``; returns the log dict.

    Raises UserError for bad input before any work starts; KeyboardInterrupt after writing the
    best image so far and ``OUT.ckpt.npz``.
    """
    from .fsutil import atomic_write, check_output_path
    from .image import center_crop_square, load_image, resize_longest, resize_to, save_image
    from .vgg import load_vgg

    preset = PRESETS.get(opts.preset)
    if preset is None:
        raise UserError(f"unknown preset {opts.preset!r}; valid presets: {', '.join(PRESETS)}")
    settings = resolve_settings(opts.preset, dict(overrides))  # validate flags before loading anything
    _positive("size", opts.size)
    _positive("iters", opts.iters)
    _positive("lr", opts.lr)
    _positive("style_scale", opts.style_scale)
    if opts.save_every < 0:
        raise UserError(f"--save-every must be >= 0, got {opts.save_every}")
    output = Path(opts.output)
    inputs = [content_path, *style_paths]
    check_output_path(output, inputs)
    for extra in (opts.log, opts.report):
        if extra:
            check_output_path(Path(extra), inputs)
    size = int(opts.size or preset.size)
    iters = int(opts.iters or preset.iters)
    optimizer = opts.optimizer or preset.optimizer
    init = opts.init or preset.init

    content = load_image(content_path, max_pixels=opts.max_pixels, what="content")
    if preset.square_crop:
        content = center_crop_square(content)
    content = resize_longest(content, size)
    styles = []
    for p in style_paths:
        st = load_image(p, max_pixels=opts.max_pixels, what="style")
        if opts.style_scale:
            st = resize_longest(st, max(1, round(size * opts.style_scale)))
        else:
            st = resize_to(st, content.shape[:2])
        styles.append(st)

    if opts.device == "cpu":
        _check_memory(settings, content.shape[:2], optimizer)
    net = load_vgg(settings["arch"], weights=opts.weights, device=opts.device, flip_kernels=opts.flip_kernels)
    obj = Objective(net, content, styles, preset=opts.preset, **overrides)
    mean_rgb = net.mean_bgr[::-1]

    start_it = 0
    x0 = None
    if opts.resume:
        try:
            ck = np.load(opts.resume, allow_pickle=False)
            x0, start_it = ck["image"].astype(np.float64), int(ck["iteration"])
        except Exception as exc:
            raise UserError(f"cannot read checkpoint {opts.resume}: {exc}") from None
        if x0.shape != content.shape:
            raise UserError(f"checkpoint {opts.resume} holds a {x0.shape[1]}x{x0.shape[0]} image but this run "
                            f"works at {content.shape[1]}x{content.shape[0]}; resume with the same --size")
    else:
        x0 = _init_image(init, content, styles, opts.seed, mean_rgb, opts.max_pixels)

    log = {"settings": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in obj.settings.items()},
                        "size": size, "height": content.shape[0], "width": content.shape[1], "iters": iters,
                        "optimizer": optimizer, "init": init, "seed": opts.seed, "device": opts.device,
                        "weights": opts.weights or "cache", "content": str(content_path),
                        "styles": [str(p) for p in style_paths]},
           "iterations": [], "final_loss": None}
    state = {"x": x0.copy(), "best": x0.copy(), "best_loss": math.inf, "it": start_it}
    t0 = time.perf_counter()
    remaining = max(0, iters - start_it)

    from tqdm import tqdm
    bar = tqdm(total=iters, initial=start_it, disable=opts.quiet, unit="it", dynamic_ncols=True,
               desc=f"{opts.preset} {content.shape[1]}x{content.shape[0]}", file=sys.stderr)

    def on_iteration(it, x, terms):
        terms = terms or {}
        state["x"], state["it"] = np.array(x, copy=True), it
        loss = float(terms.get("total", math.nan))
        if loss < state["best_loss"]:
            state["best_loss"], state["best"] = loss, state["x"]
        log["iterations"].append({"iteration": it, "loss": loss, "content": terms.get("content"),
                                  "style": terms.get("style"), "tv": terms.get("tv"),
                                  "seconds": round(time.perf_counter() - t0, 4)})
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4g}", content=f"{terms.get('content', 0):.3g}",
                        style=f"{terms.get('style', 0):.3g}", tv=f"{terms.get('tv', 0):.3g}", refresh=False)
        if opts.save_every and it % opts.save_every == 0:
            save_image(_snapshot_path(output, it), x)
        return False

    def on_round(rnd, x):
        if not opts.save_every:
            save_image(_snapshot_path(output, state["it"]), x)

    def write_checkpoint():
        ck_path = Path(f"{output}.ckpt.npz")
        with atomic_write(ck_path) as fh:
            np.savez(fh, image=state["best"], iteration=state["it"],
                     settings=json.dumps(log["settings"]),
                     rng=json.dumps(np.random.default_rng(opts.seed).bit_generator.state))
        return ck_path

    old_term = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    quiet_fp = np.errstate(over="ignore", invalid="ignore")  # overflow is reported as one sentence below
    quiet_fp.__enter__()
    try:
        if optimizer == "lbfgs":
            final = _run_lbfgs(obj, state["x"], remaining, settings, on_iteration, on_round, start_it)
        elif optimizer == "adam":
            final = _run_adam(obj, state["x"], remaining, settings, opts.lr, on_iteration, start_it)
        elif optimizer == "lbfgs-device":
            from .optim_device import run_transfer
            final = run_transfer(obj, state["x"], remaining, settings, on_iteration, on_round, start_it)
        else:
            raise UserError(f"unknown optimizer {optimizer!r}: expected lbfgs, lbfgs-device or adam")
    except KeyboardInterrupt:
        bar.close()
        save_image(output, state["best"])
        ck = write_checkpoint()
        cmd = [a for a in (argv or []) if a]
        cmd = _with_resume(cmd, str(ck))
        print(f"\ninterrupted at iteration {state['it']}: best image so far written to {output}, "
              f"checkpoint {ck}\nresume with: minivgg {' '.join(shlex.quote(a) for a in cmd)}\n"
              f"(L-BFGS history restarts on resume)", file=sys.stderr)
        raise
    except _NonFinite as exc:
        bar.close()
        save_image(output, state["best"])
        raise UserError(f"{exc} at iteration {state['it'] + 1}; the last finite image is in {output}; "
                        f"lower --{exc.term}-weight or --lr") from None
    finally:
        quiet_fp.__exit__(None, None, None)
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    bar.close()
    final_loss = obj.terms(final)["total"]
    log["final_loss"] = final_loss
    log["seconds"] = round(time.perf_counter() - t0, 3)
    save_image(output, final)
    if opts.log:
        with atomic_write(opts.log, "w") as fh:
            json.dump(log, fh, indent=1, default=float)
    if opts.report:
        from .report import make_report
        make_report(opts.report, content, styles, np.clip(final, 0, 255), log)
    return log


def _check_memory(settings, hw, optimizer):
    """Refuse, before allocating, a size whose estimated peak exceeds the memory available now."""
    from .memory import available_bytes, estimate_bytes, largest_fitting_size
    taps = list(settings["content_layers"]) + list(settings["style_layers"])
    need, have = estimate_bytes(settings["arch"], *hw, taps, optimizer), available_bytes()
    if have is not None and need > 0.9 * have:
        fits = largest_fitting_size(settings["arch"], *hw, taps, int(0.9 * have), optimizer)
        raise UserError(f"a {hw[1]}x{hw[0]} run needs about {need / 2**30:.1f} GiB but {have / 2**30:.1f} GiB "
                        f"are available; use --size {fits} or smaller (or free memory)")


def _run_lbfgs(obj, x, iters, s, on_iteration, on_round, start_it):
    from .optim import lbfgs
    bounds = (0.0, 255.0) if s["bounds"] else None
    from .memory import lbfgs_history
    return lbfgs(obj, x, iters, round_evals=s["round_evals"], bounds=bounds, callback=on_iteration,
                 round_callback=on_round, start_iteration=start_it, history=lbfgs_history(x.shape[0] * x.shape[1]))


def _run_adam(obj, x, iters, s, lr, on_iteration, start_it):
    from .optim import adam
    unit = {"pixel": 1.0, "unit01": 255.0,
            "imagenet_std": 255.0 * np.asarray((0.229, 0.224, 0.225))}[s["lr_unit"]]
    return adam(obj, x, iters, lr=lr if lr is not None else s["lr"], betas=tuple(s["betas"]), eps=s["adam_eps"],
                unit=unit, decay_every=s["lr_decay_every"], decay_gamma=s["lr_decay_gamma"],
                clip=(0.0, 255.0) if s["clip"] or s["bounds"] else None, callback=on_iteration,
                start_iteration=start_it)


from .optim import NonFiniteError as _NonFinite  # noqa: E402


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _main_thread():
    import threading
    return threading.current_thread() is threading.main_thread()


def _with_resume(cmd, ck):
    out, skip = [], False
    for a in cmd:
        if skip:
            skip = False
            continue
        if a == "--resume":
            skip = True
            continue
        if a.startswith("--resume="):
            continue
        out.append(a)
    return out + ["--resume", ck]


# ---------------------------------------------------------------------------------------- CLI

def _floats(text):
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"expected comma-separated numbers, got {text!r}") from None


def add_cli(sub) -> None:
    p = sub.add_parser("transfer", help="stylize CONTENT with one or more STYLE images")
    p.add_argument("content", help="content image")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s)")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, …)")
    p.add_argument("--preset", default="gatys", help=f"loss formulation: {', '.join(PRESETS)} (default gatys)")
    p.add_argument("--size", type=int, help="longest side of the output in pixels (default: the preset's)")
    p.add_argument("--style-scale", type=float, help="style longest side as a multiple of --size "
                                                     "(default: style resized to the content's size)")
    p.add_argument("--iters", type=int, help="iterations (default: the preset's)")
    p.add_argument("--optimizer", choices=["lbfgs", "lbfgs-device", "adam"],
                   help="default: the preset's; lbfgs-device keeps L-BFGS on the --device (no per-step copies)")
    p.add_argument("--lr", type=float, help="Adam learning rate, in the preset's units")
    p.add_argument("--init", help="content, random, style, noise, or an image path (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="seed of random initialisation")
    p.add_argument("--content-weight", type=float)
    p.add_argument("--style-weight", type=float)
    p.add_argument("--tv-weight", type=float)
    p.add_argument("--content-layers", help="comma-separated layer names, e.g. block4_conv2")
    p.add_argument("--style-layers", help="comma-separated layer names")
    p.add_argument("--style-layer-weights", help="comma-separated, one per style layer")
    p.add_argument("--style-blend-weights", help="comma-separated, one per style image")
    p.add_argument("--pooling", choices=["avg", "max"])
    p.add_argument("--weights", help="a VGG weights file (default: the verified cache)")
    p.add_argument("--flip-kernels", choices=["yes", "no", "auto"],
                   help="kernel orientation of a Theano-era --weights file (default: detected from the manifest)")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--save-every", type=int, default=0, metavar="N", help="write OUT_0100.png … every N iterations")
    p.add_argument("--log", help="write a JSON log of settings and per-iteration losses")
    p.add_argument("--report", help="write a report picture (inputs, result, loss curves)")
    p.add_argument("--max-pixels", type=int, help="largest input image accepted (pixels)")
    p.add_argument("--resume", help="continue from a checkpoint OUT.ckpt.npz")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_transfer)

    p = sub.add_parser("presets", help="list the presets with their layers and weights")
    p.set_defaults(func=_cmd_presets)

    p = sub.add_parser("demo", help="stylize bundled sample photographs (no arguments needed)")
    p.add_argument("-o", "--outdir", default="minivgg-demo", help="output folder (default ./minivgg-demo)")
    p.add_argument("--size", type=int, default=256, help="longest side (default 256)")
    p.add_argument("--iters", type=int, default=80, help="L-BFGS iterations (default 80)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)


def _overrides_from_args(args) -> dict:
    ov = {"content_weight": args.content_weight, "style_weight": args.style_weight, "tv_weight": args.tv_weight,
          "pooling": args.pooling}
    if args.content_layers:
        ov["content_layers"] = tuple(t.strip() for t in args.content_layers.split(",") if t.strip())
    if args.style_layers:
        ov["style_layers"] = tuple(t.strip() for t in args.style_layers.split(",") if t.strip())
    if args.style_layer_weights:
        ov["style_layer_weights"] = tuple(_floats(args.style_layer_weights))
    if args.style_blend_weights:
        ov["style_blend_weights"] = _floats(args.style_blend_weights)
    return {k: v for k, v in ov.items() if v is not None}


def _cmd_transfer(args) -> int:
    opts = RunOptions(output=args.output, preset=args.preset, size=args.size, style_scale=args.style_scale,
                      iters=args.iters, optimizer=args.optimizer, lr=args.lr, init=args.init, seed=args.seed,
                      weights=args.weights, flip_kernels=args.flip_kernels, device=args.device,
                      save_every=args.save_every, log=args.log, report=args.report, quiet=args.quiet, max_pixels=args.max_pixels, resume=args.resume)
    overrides = _overrides_from_args(args)
    if args.style_blend_weights and len(overrides["style_blend_weights"]) != len(args.styles):
        raise UserError(f"--style-blend-weights has {len(overrides['style_blend_weights'])} values for "
                        f"{len(args.styles)} style images")
    log = stylize(args.content, args.styles, opts, overrides, argv=sys.argv[1:])
    print(f"wrote {args.output} (final loss {log['final_loss']:.6g}, {log['seconds']:.1f} s)")
    return 0


def _cmd_presets(args) -> int:
    for name, p in PRESETS.items():
        s = resolve_settings(name, {})
        print(f"{name}: {p.source}")
        print(f"  network {p.arch}, {p.pooling} pooling; optimizer {p.optimizer}, {p.iters} iterations"
              + (f" in rounds of {p.round_evals}" if p.round_evals else "") + f", init {p.init}, size {p.size}")
        cl = ", ".join(f"{t}×{w:.3g}" for t, w in zip(s["content_layers"], s["content_layer_weights"]))
        sl = ", ".join(f"{t}×{w:.3g}" for t, w in zip(s["style_layers"], s["style_layer_weights"]))
        print(f"  content_weight {p.content_weight:g} ({p.content_norm}): {cl}")
        print(f"  style_weight {p.style_weight:g} (gram {p.gram}, norm {p.style_norm}): {sl}")
        print(f"  tv_weight {p.tv_weight:g} ({p.tv})")
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(args)

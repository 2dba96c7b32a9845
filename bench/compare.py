"""``python -m bench.compare``: minivgg's objective evaluation against the same objective in PyTorch.

For each size: both objectives on the same weights, images and start point; one warm-up evaluation
per side (whose outputs are compared: loss, gradient, each term); then interleaved timed
evaluations (A B, B A, …), each engine in a worker process of its own (``bench.workers``), and their medians; then peak RSS over ``PEAK_EVALS`` evaluations per engine in a
fresh process (``--size-only``). Threads are pinned equal on both sides. Writes ``bench/results.md``
and ``bench/results.png``. ``--size-only N --engine E`` measures just one evaluation at one size.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import environment
from .timing import interleaved, peak_rss_mib, reset_peak_rss, rss_mib
from .workers import Worker

REPO = Path(__file__).resolve().parents[1]
RESULT_TAG = "BENCH_RESULT "
CONTENT_IMAGE, STYLE_IMAGE = "tubingen.jpg", "starry_night.jpg"
PRESET = "gatys"
# Float32 rounding through 13 conv layers stays far below these; above them one side has a bug.
# A pixel "differs" when its gradient differs by more than LOCAL_DIFF of the largest gradient: a
# ReLU whose pre-activation is within rounding of 0 flips in one side only and moves a patch the
# size of its receptive field; a wrong formula or a border bug moves far more pixels.
TOL_LOSS, TOL_GRAD, LOCAL_DIFF, TOL_PIXELS = 1e-4, 1e-3, 1e-3, 1e-3


def default_images_dir() -> Path:
    """``$MINIVGG_BENCH_IMAGES``, else ``../shared/images`` beside the checkout, else ``shared/images`` in it."""
    if os.environ.get("MINIVGG_BENCH_IMAGES"):
        return Path(os.environ["MINIVGG_BENCH_IMAGES"])
    for cand in (REPO.parent / "shared" / "images", REPO / "shared" / "images"):
        if cand.is_dir():
            return cand
    return REPO.parent / "shared" / "images"


def load_images(size: int, images_dir: Path):
    """Content and style as (size, size, 3) uint8 RGB, resized with Pillow (aspect not kept)."""
    from PIL import Image
    out = []
    for name in (CONTENT_IMAGE, STYLE_IMAGE):
        with Image.open(images_dir / name) as im:
            out.append(np.asarray(im.convert("RGB").resize((size, size), Image.LANCZOS), dtype=np.uint8))
    return tuple(out)


def start_point(content, noise: float, seed: int):
    """The evaluation point: content pixels plus uniform noise (so every loss term is non-zero)."""
    rng = np.random.default_rng(seed)
    return np.clip(content.astype(np.float64) + rng.uniform(-noise, noise, content.shape), 0, 255)


def load_network(choice: str):
    """``(net, description, resolved choice)``: 'cached' = verified VGG16 from the cache, 'random' = He-random
    weights (seed 0, identical shapes), 'auto' = cached when available, a path = that weights file."""
    from minivgg.vgg import load_vgg, random_vgg
    if choice == "random":
        return random_vgg("vgg16", seed=0), "random He-initialised VGG16 (random_vgg seed 0)", "random"
    if choice not in ("auto", "cached"):
        net = load_vgg("vgg16", weights=choice)
        return net, f"VGG16 from {choice} ({net.provenance})", choice
    try:
        net = load_vgg("vgg16")
        prov = net.provenance
        facts = [f"{k} {prov[k]}" for k in ("verified", "source", "path") if prov.get(k)]
        return net, "cached VGG16 (" + ("; ".join(facts) or str(prov)) + ")", "cached"
    except Exception as exc:
        if choice == "cached":
            raise
        reason = str(exc).splitlines()[0]
        return (random_vgg("vgg16", seed=0), f"random He-initialised VGG16 (random_vgg seed 0): the cached "
                f"weights are not available ({type(exc).__name__}: {reason})", "random")


def build(engine: str, net, content, style):
    """The objective of ``engine`` on one network and image pair: 'minivgg' (its default convs),
    'minivgg:ALGORITHM' (every conv with ``ops.conv2d_forward(algorithm=ALGORITHM)``), 'minivgg:numpy-first'
    (the default objective; the process imported numpy before minivgg, see ``bench/__init__``), 'torch'
    (eager NCHW) or 'torch:CONFIG' (``torch_objective.CONFIGS``: channels_last, compile)."""
    name, _, variant = engine.partition(":")
    if name == "minivgg":
        from minivgg.objective import Objective
        conv = variant if variant and variant != "numpy-first" else None
        return Objective(dataclasses.replace(net, conv=conv) if conv else net, content, style, preset=PRESET)
    from .torch_objective import TorchObjective
    return TorchObjective(net, content, style, preset=PRESET, config=variant or "eager")


def agreement(a, b, terms_a, terms_b, reference=None) -> dict:
    """Relative differences between minivgg's ``a = (loss, grad)`` and torch's ``b`` (torch is the
    reference), and, given ``reference`` (a float64 minivgg evaluation), each side's distance to it."""
    (la, ga), (lb, gb) = a, b
    diff = ga - gb
    local = np.abs(diff).max(axis=-1) > LOCAL_DIFF * np.abs(gb).max()
    out = {"loss_minivgg": la, "loss_torch": lb, "loss_rel": abs(la - lb) / max(abs(lb), 1e-300),
           "grad_rel_l2": float(np.linalg.norm(diff) / max(np.linalg.norm(gb), 1e-300)),
           "grad_rel_max": float(np.abs(diff).max() / max(np.abs(gb).max(), 1e-300)),
           "pixels_differing": float(local.mean()),
           "cosine": float(np.vdot(ga, gb) / max(np.linalg.norm(ga) * np.linalg.norm(gb), 1e-300)),
           "terms": {k: abs(terms_a[k] - terms_b[k]) / abs(terms_b[k]) if terms_b[k] else abs(terms_a[k])
                     for k in ("content", "style", "tv")}}
    if reference is not None:
        l64, g64 = reference
        out["vs_float64"] = {eng: (abs(l - l64) / abs(l64), float(np.linalg.norm(g - g64) / np.linalg.norm(g64)))
                             for eng, (l, g) in (("minivgg", a), ("torch", b))}
    ok = out["loss_rel"] <= TOL_LOSS and out["grad_rel_l2"] <= TOL_GRAD and out["pixels_differing"] <= TOL_PIXELS
    out["verdict"] = "agree" if ok else "**DISAGREE**"
    return out


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------- one size, one process

# Evaluations behind each fresh-process peak RSS: minivgg's first records its arrays and its second is
# the first served from the planned buffer (minivgg/arena.py), so one evaluation would not show that peak.
PEAK_EVALS = 3


def measure_one(size: int, engine: str, weights: str, images_dir: Path, evals: int, noise: float, seed: int) -> dict:
    """The first evaluation's time and peak RSS in this (fresh) process; more evaluations add a steady-state
    time, and ``process_peak_mib`` is the peak over setup and all of them."""
    net, weights_desc, _ = load_network(weights)
    content, style = load_images(size, images_dir)
    x = start_point(content, noise, seed)
    t0 = time.perf_counter()
    objective = build(engine, net, content, style)
    setup_s = time.perf_counter() - t0
    del content, style
    gc.collect()
    out = {"size": size, "engine": engine, "weights": weights_desc, "setup_s": setup_s,
           "setup_peak_mib": peak_rss_mib(), "rss_after_setup_mib": rss_mib()}
    out["peak_reset"] = reset_peak_rss()
    t0 = time.perf_counter()
    loss, grad = objective.value_and_grad(x)
    out["eval_s"] = time.perf_counter() - t0
    out["eval_peak_mib"] = peak_rss_mib()
    out["process_peak_mib"] = max(out["setup_peak_mib"], out["eval_peak_mib"])
    out["loss"] = loss
    del grad
    steady = []
    for _ in range(evals - 1):
        t0 = time.perf_counter()
        objective.value_and_grad(x)
        steady.append(time.perf_counter() - t0)
    if steady:
        out["steady_eval_s"] = float(np.median(steady))
        out["peak_after_all_evals_mib"] = peak_rss_mib()
        out["process_peak_mib"] = max(out["process_peak_mib"], out["peak_after_all_evals_mib"])
    out["threads"] = environment.thread_report()
    return out


def run_child(size: int, engine: str, args, weights: str, timeout: float, evals: int = PEAK_EVALS) -> dict:
    """``measure_one`` of ``evals`` evaluations in a fresh interpreter with the same thread settings; errors
    come back as ``{"error"}``. ``engine`` may name a conv algorithm (``minivgg:im2col``)."""
    name, _, variant = engine.partition(":")
    cmd = [sys.executable, "-m", "bench.compare", "--size-only", str(size), "--engine", name,
           "--threads", str(args.threads), "--weights", weights, "--images", str(args.images),
           "--repeats", str(evals), "--noise", str(args.noise), "--seed", str(args.seed), "--json"]
    if variant in ("channels_last", "compile"):
        cmd += ["--torch-config", variant]
    elif variant and variant != "numpy-first":
        cmd += ["--conv", variant]
    env = environment.thread_env(args.threads)
    if variant == "numpy-first":
        env["MINIVGG_BENCH_NUMPY_FIRST"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"size": size, "engine": engine, "error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    why = "killed by SIGKILL (out of memory?)" if proc.returncode == -9 else f"exit status {proc.returncode}"
    tail = (proc.stderr.strip().splitlines() or [""])[-1][:200]
    return {"size": size, "engine": engine, "error": f"{why}: {tail}"}


def size_only(args) -> int:
    """``--size-only``: this process is the fresh one; prints the result (and ``BENCH_RESULT {json}``)."""
    environment.pin_threads(args.threads, torch_too=args.engine == "torch")
    engine = args.engine
    if args.engine == "minivgg" and args.conv:
        engine += f":{args.conv[0]}"
    elif args.engine == "minivgg" and os.environ.get("MINIVGG_BENCH_NUMPY_FIRST") == "1":
        engine += ":numpy-first"
    elif args.engine == "torch" and args.torch_config != "eager":
        engine += f":{args.torch_config}"
    res = measure_one(args.size_only, engine, args.weights, args.images, args.repeats or 1, args.noise, args.seed)
    res["threads_requested"] = args.threads
    if args.json:
        print(RESULT_TAG + json.dumps(res))
        return 0
    print(f"{args.engine} at {args.size_only}²: one evaluation {res['eval_s']:.2f} s, peak RSS "
          f"{res['process_peak_mib'] / 1024:.2f} GiB (after setup {res['rss_after_setup_mib'] / 1024:.2f} GiB, "
          f"during the evaluation {res['eval_peak_mib'] / 1024:.2f} GiB); setup {res['setup_s']:.1f} s; "
          f"weights: {res['weights']}; threads {res['threads']}")
    if "steady_eval_s" in res:
        print(f"steady-state evaluation (median of {args.repeats - 1}): {res['steady_eval_s']:.2f} s")
    if args.out:
        Path(args.out).write_text(
            f"# one evaluation at {args.size_only}² ({args.engine})\n\n- command: `python -m bench.compare "
            f"{shlex.join(sys.argv[1:])}`\n- date: {environment.now()}\n- machine: {environment.machine_report()}\n"
            f"- versions: {environment.versions(torch_too=args.engine == 'torch')}\n\n"
            f"```json\n{json.dumps(res, indent=1)}\n```\n")
    return 0


# ------------------------------------------------------------------------------------ the comparison

def compare(args) -> int:
    """The full A/B run over ``--sizes``; writes the markdown table and the plot."""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # fail before measuring, not after
    env_at_start = environment.env_settings()
    machine = environment.machine_report()  # load average at the start
    environment.pin_threads(args.threads, torch_too=True)
    from . import ops as bench_ops
    from . import report
    net, weights_desc, weights_choice = load_network(args.weights)
    log(f"weights: {weights_desc}; threads {environment.thread_report()}")
    repeats = args.repeats or 5
    rows, breakdown, thread_reports = {}, {}, {}
    breakdown_size = args.breakdown_size or max([s for s in args.sizes if s <= 512] or [min(args.sizes)])
    for size in ([] if args.peers_only else args.sizes):
        content, style = load_images(size, args.images)
        x = start_point(content, args.noise, args.seed)
        workers = {eng: Worker(eng, size, args, weights_choice) for eng in report.ENGINES}
        try:
            # The first evaluation of each side is the warm-up; its outputs are what the agreement check compares.
            outputs = {eng: w.call("outputs") for eng, w in workers.items()}
            reference = None
            if args.reference64:
                from minivgg.objective import Objective
                reference = Objective(net.astype(np.float64), content, style, preset=PRESET).value_and_grad(x)
            agree = agreement(outputs["minivgg"][:2], outputs["torch"][:2], outputs["minivgg"][2],
                              outputs["torch"][2], reference)
            del outputs, reference
            log(f"{size}²: loss rel diff {agree['loss_rel']:.1e}, grad rel L2 diff {agree['grad_rel_l2']:.1e} "
                f"({agree['verdict']})")
            fns = {eng: (lambda w=w: w.call("eval")) for eng, w in workers.items()}
            times = interleaved(fns, repeats, warmup=max(0, args.warmup - 1), cooldown=args.cooldown,
                                self_timed=True)
            ratio = float(np.median(times["minivgg"]) / np.median(times["torch"]))
            log(f"{size}²: minivgg {np.median(times['minivgg']):.3f} s, torch {np.median(times['torch']):.3f} s, "
                f"ratio {ratio:.2f}")
            rows[size] = {"times": times, "ratio": ratio, "agreement": agree, "memory": {}}
            if args.ops and size == breakdown_size:
                breakdown = {eng: w.call("breakdown") for eng, w in workers.items()}
                breakdown["size"] = size
            thread_reports = {eng: w.call("threads") for eng, w in workers.items()}
        finally:
            for w in workers.values():
                w.close()
        gc.collect()
        if not args.skip_memory:
            for eng in report.ENGINES:
                rows[size]["memory"][eng] = m = run_child(size, eng, args, weights_choice, args.child_timeout)
                log(f"{size}² {eng}: " + (m["error"] if "error" in m else
                                         f"peak RSS {m['process_peak_mib']:.0f} MiB, cold eval {m['eval_s']:.2f} s"))
    large = []
    for size in args.large_sizes:
        for eng in args.large_engines:
            log(f"{size}² {eng}: one evaluation in a fresh process …")
            large.append(run_child(size, eng, args, weights_choice, args.child_timeout, evals=1))
    conv = conv_rows(args, weights_choice, repeats) if args.conv else None
    peers = None
    if args.peers or args.peers_only:
        from .peers import peer_rows
        peers = peer_rows(args, weights_choice, repeats)
    ops_rows = []
    if args.ops:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.op_shapes]
        log(f"per-op timings at {shapes} …")
        # eager NCHW (what the peers ship) and channels_last (oneDNN's own layout, the fastest eager torch)
        workers = {eng: Worker(eng, None, args) for eng in (*report.ENGINES, "torch:channels_last")}
        try:
            ops_rows = bench_ops.op_timings(shapes, max(repeats, 5), workers, cooldown=args.cooldown)
        finally:
            for w in workers.values():
                w.close()
    meta = {"command": "python -m bench.compare " + shlex.join(sys.argv[1:]), "date": environment.now(),
            "machine": machine, "versions": environment.versions(),
            "weights": weights_desc, "threads": args.threads, "thread_report": thread_reports,
            "workers": True, "minivgg_thread_defaults": environment.minivgg_thread_defaults(),
            "blas": environment.blas_report(), "torch_backend": environment.torch_backend_report(),
            "env": env_at_start, "note": args.note, "images": f"{CONTENT_IMAGE} (content), {STYLE_IMAGE} (style)",
            "noise": args.noise, "seed": args.seed, "warmup": args.warmup, "repeats": repeats,
            "cooldown": args.cooldown,
            "tol_loss": TOL_LOSS, "tol_grad": TOL_GRAD, "local_diff": LOCAL_DIFF, "tol_pixels": TOL_PIXELS,
            "load_end": " / ".join(f"{v:.2f}" for v in os.getloadavg())}
    raw = {"meta": meta, "rows": {str(k): v for k, v in rows.items()}, "large": large, "ops": ops_rows,
           "breakdown": breakdown, "conv": conv, "peers": peers}
    Path(args.out).with_suffix(".json").write_text(json.dumps(raw, indent=1))
    return render(raw, Path(args.out))


def conv_rows(args, weights_choice: str, repeats: int) -> dict:
    """A row per ``--conv`` algorithm at ``--conv-size``, against torch, in one run: the minivgg objective
    with every conv forced to that algorithm and torch's, each in its own worker, interleaved; the
    agreement of each with torch; peak RSS over ``PEAK_EVALS`` evaluations in a fresh process per engine."""
    size = args.conv_size
    engines = [f"minivgg:{a}" for a in args.conv] + ["torch"]
    log(f"conv algorithms at {size}²: {', '.join(engines)} …")
    workers = {eng: Worker(eng, size, args, weights_choice) for eng in engines}
    try:
        outputs = {eng: w.call("outputs") for eng, w in workers.items()}
        agree = {eng: agreement(outputs[eng][:2], outputs["torch"][:2], outputs[eng][2], outputs["torch"][2])
                 for eng in engines[:-1]}
        del outputs
        times = interleaved({eng: (lambda w=w: w.call("eval")) for eng, w in workers.items()}, repeats,
                            warmup=max(0, args.warmup - 1), cooldown=args.cooldown, self_timed=True)
    finally:
        for w in workers.values():
            w.close()
    out = {"size": size, "rows": {}}
    for eng in engines:
        memory = {} if args.skip_memory else run_child(size, eng, args, weights_choice, args.child_timeout)
        out["rows"][eng] = {"times": times[eng], "agreement": agree.get(eng), "memory": memory}
        log(f"{size}² {eng}: median {np.median(times[eng]):.3f} s"
            + ("" if not memory or "error" in memory else f", peak RSS {memory['process_peak_mib']:.0f} MiB"))
    return out


def render(raw: dict, out: Path) -> int:
    """Write the markdown page and the plot from the raw results (also ``--render results.json``)."""
    from . import report
    from .peers import peer_table
    rows = {int(k): v for k, v in raw["rows"].items()}
    if not rows:  # --peers-only
        meta = raw["meta"]
        text = "\n".join([f"# minivgg vs PyTorch configurations ({meta['date']})", "",
                           f"- command: `{meta['command']}`", f"- machine: {meta['machine']}",
                           f"- versions: {meta['versions']}", f"- weights: {meta['weights']}; threads {meta['threads']}",
                           f"- load average at the end: {meta['load_end']}", ""] + peer_table(raw.get("peers"))) + "\n"
        out.write_text(text)
        print(text)
        return 0 if all(r["agreement"]["verdict"] == "agree" for p in raw["peers"].values()
                        for r in p["rows"].values() if r.get("agreement")) else 1
    exponents = report.scaling_exponents(rows)
    transfer_json = out.parent / "transfer_4096.json"  # python -m bench.transfer --size 4096
    transfer = json.loads(transfer_json.read_text()) if transfer_json.is_file() else None
    text = report.markdown(raw["meta"], rows, raw["large"], raw["ops"], raw["breakdown"], exponents, transfer,
                           conv=raw.get("conv"))
    if raw.get("peers"):
        text = text.rstrip("\n") + "\n\n" + "\n".join(peer_table(raw["peers"])) + "\n"
    tiled_json = out.parent / "tiling.json"  # python -m bench.tiling: the "Tiled evaluation" section
    if tiled_json.is_file():
        text = text.rstrip("\n") + "\n\n" + "\n".join(report.tiling_section(json.loads(tiled_json.read_text()))) + "\n"
    out.write_text(text)
    report.plot(rows, raw["large"], exponents, out.with_suffix(".png"))
    print(text)
    log(f"wrote {out}, {out.with_suffix('.png')} and {out.with_suffix('.json')}")
    return 0 if all(r["agreement"]["verdict"] == "agree" for r in rows.values()) else 1


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="image sides to compare")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed evaluations per side and size (default 5; --size-only: evaluations, default 1)")
    p.add_argument("--warmup", type=int, default=1, help="untimed evaluations per side first (≥ 1)")
    p.add_argument("--cooldown", type=float, default=0.2,
                   help="seconds of sleep before each timed evaluation, outside the timer "
                        "(lets the other side's threads go idle)")
    p.add_argument("--threads", type=int, default=environment.usable_cores(), help="threads on both sides")
    p.add_argument("--weights", default="auto",
                   help="auto (cached if available, else random), cached, random, or a file")
    p.add_argument("--images", type=Path, default=default_images_dir(),
                   help="folder with tubingen.jpg and starry_night.jpg")
    p.add_argument("--out", default=None, help="markdown output (default bench/results.md; the PNG goes beside it)")
    p.add_argument("--ops", action="store_true", help="also per-op timings and a per-op breakdown of one evaluation")
    p.add_argument("--op-shapes", nargs="+", default=["64x256", "256x128", "512x64"], help="CHANNELSxSIDE for --ops")
    p.add_argument("--breakdown-size", type=int, default=None,
                   help="size of the --ops breakdown (default: the largest size ≤ 512)")
    p.add_argument("--reference64", action="store_true",
                   help="also evaluate minivgg in float64 and report each side's distance to it")
    p.add_argument("--skip-memory", action="store_true", help="no fresh-process peak-RSS measurements")
    p.add_argument("--large-sizes", type=int, nargs="*", default=[],
                   help="sizes measured only by one evaluation in a fresh process (e.g. 4096)")
    p.add_argument("--large-engines", nargs="+", default=["minivgg"], choices=["minivgg", "torch"])
    p.add_argument("--child-timeout", type=float, default=7200.0, help="seconds allowed per fresh-process measurement")
    p.add_argument("--render", type=Path, default=None,
                   help="only rewrite the markdown and plot from a results .json of an earlier run")
    p.add_argument("--size-only", type=int, default=None, help="just one evaluation at this size in this process")
    p.add_argument("--engine", default="minivgg", choices=["minivgg", "torch"], help="engine for --size-only")
    p.add_argument("--json", action="store_true", help="--size-only: print a BENCH_RESULT JSON line")
    p.add_argument("--torch-config", default="eager", choices=["eager", "channels_last", "compile"],
                   help="--size-only with --engine torch: the PyTorch configuration")
    p.add_argument("--peers", action="store_true",
                   help="also the peer rows at every --sizes: minivgg in both import orders against PyTorch eager, "
                        "channels_last and torch.compile, interleaved, with peak RSS and the first evaluation's time")
    p.add_argument("--peers-only", action="store_true", help="only the peer rows (no two-engine table)")
    p.add_argument("--conv", nargs="+", default=[], choices=["auto", "im2col", "winograd"],
                   help="also a row per conv algorithm at --conv-size against torch (e.g. --conv im2col winograd); "
                        "--size-only: the algorithm of that one evaluation")
    p.add_argument("--conv-size", type=int, default=512, help="image side of the --conv rows (default 512)")
    p.add_argument("--noise", type=float, default=16.0, help="± uniform noise added to the content for x")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--note", default=None, help="a line shown at the top of results.md (e.g. 'preliminary')")
    args = p.parse_args(argv)
    if args.warmup < 1:
        p.error("--warmup must be at least 1 (the first evaluation is also the agreement check)")
    if min(args.sizes + ([args.size_only] if args.size_only else [])) < 16:
        p.error("sizes must be at least 16 pixels (block5_conv1 sits after four 2x2 poolings)")
    for s in args.op_shapes:
        if len(s.split("x")) != 2 or not all(v.isdigit() for v in s.split("x")):
            p.error(f"--op-shapes wants CHANNELSxSIDE like 64x256, got {s!r}")
    if not (args.images / CONTENT_IMAGE).is_file() or not (args.images / STYLE_IMAGE).is_file():
        p.error(f"{args.images} lacks {CONTENT_IMAGE} or {STYLE_IMAGE}; pass --images or set MINIVGG_BENCH_IMAGES")
    if args.out is None and args.size_only is None:
        args.out = str(REPO / "bench" / "results.md")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        return render(json.loads(args.render.read_text()), Path(args.out))
    return size_only(args) if args.size_only is not None else compare(args)


if __name__ == "__main__":
    sys.exit(main())

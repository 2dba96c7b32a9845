"""``python -m bench.compare``: minivgg's objective evaluation against the same one in PyTorch.

For each size: both objectives on the same weights, images and start point; one warm-up evaluation
per side (whose outputs are compared: loss, gradient, each term); then interleaved timed
evaluations (A B, B A, …), each engine in a worker process of its own (``bench.workers``), and
their medians; then peak RSS over ``evaluation.PEAK_EVALS`` evaluations per engine in a fresh
process (``--size-only``). Threads are pinned equal on both sides. Writes
``bench/results/compare.md``, ``compare.json`` and ``compare.png``; the peer rows (``--peers``,
``--peers-only``) go to ``bench/results/peers.md`` and ``peers.json``; then ``bench/results.md``
is regenerated (``bench.index``). ``--size-only N --engine E`` measures just one evaluation at one
size.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np

from . import environment, report
from . import ops as bench_ops
from .evaluation import (
    CONTENT_IMAGE,
    LOCAL_DIFF,
    PRESET,
    RESULT_TAG,
    STYLE_IMAGE,
    TOL_GRAD,
    TOL_LOSS,
    TOL_PIXELS,
    agreement,
    default_images_dir,
    load_images,
    load_network,
    log,
    measure_one,
    run_child,
    start_point,
)
from .index import RESULTS_DIR, save_page
from .peers import peer_page, peer_rows
from .timing import interleaved
from .workers import Worker


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
    res = measure_one(
        args.size_only, engine, args.weights, args.images, args.repeats or 1, args.noise, args.seed
    )
    res["threads_requested"] = args.threads
    if args.json:
        print(RESULT_TAG + json.dumps(res))
        return 0
    print(
        f"{args.engine} at {args.size_only}²: one evaluation {res['eval_s']:.2f} s, peak RSS "
        f"{res['process_peak_mib'] / 1024:.2f} GiB (after setup {res['rss_after_setup_mib'] / 1024:.2f} GiB, "
        f"during the evaluation {res['eval_peak_mib'] / 1024:.2f} GiB); setup {res['setup_s']:.1f} s; "
        f"weights: {res['weights']}; threads {res['threads']}"
    )
    if "steady_eval_s" in res:
        print(
            f"steady-state evaluation (median of {args.repeats - 1}): {res['steady_eval_s']:.2f} s"
        )
    if args.out:
        versions = environment.versions(torch_too=args.engine == "torch")
        save_page(
            Path(args.out),
            (
                f"# one evaluation at {args.size_only}² ({args.engine})\n\n"
                f"- command: `python -m bench.compare {shlex.join(sys.argv[1:])}`\n"
                f"- date: {environment.now()}\n- machine: {environment.machine_report()}\n"
                f"- versions: {versions}\n\n```json\n{json.dumps(res, indent=1)}\n```\n"
            ),
        )
    return 0


# ------------------------------------------------------------------------------------ the comparison


def compare(args) -> int:
    """The full A/B run over ``--sizes`` (and the peer rows); writes each page and its raw JSON."""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # fail before measuring, not after
    env_at_start = environment.env_settings()
    machine = environment.machine_report()  # load average at the start
    environment.pin_threads(args.threads, torch_too=True)
    net, weights_desc, weights_choice = load_network(args.weights)
    log(f"weights: {weights_desc}; threads {environment.thread_report()}")
    repeats = args.repeats or 5
    rows, breakdown, thread_reports = {}, {}, {}
    breakdown_size = args.breakdown_size or max(
        [s for s in args.sizes if s <= 512] or [min(args.sizes)]
    )
    for size in [] if args.peers_only else args.sizes:
        content, style = load_images(size, args.images)
        x = start_point(content, args.noise, args.seed)
        workers = {eng: Worker(eng, size, args, weights_choice) for eng in report.ENGINES}
        try:
            # The first evaluation of each side is the warm-up; its outputs are what the agreement check compares.
            outputs = {eng: w.call("outputs") for eng, w in workers.items()}
            reference = None
            if args.reference64:
                from minivgg.style.objective import Objective

                reference = Objective(
                    net.astype(np.float64), content, style, preset=PRESET
                ).value_and_grad(x)
            agree = agreement(
                outputs["minivgg"][:2],
                outputs["torch"][:2],
                outputs["minivgg"][2],
                outputs["torch"][2],
                reference,
            )
            del outputs, reference
            log(
                f"{size}²: loss rel diff {agree['loss_rel']:.1e}, grad rel L2 diff {agree['grad_rel_l2']:.1e} "
                f"({agree['verdict']})"
            )
            fns = {eng: (lambda w=w: w.call("eval")) for eng, w in workers.items()}
            times = interleaved(
                fns,
                repeats,
                warmup=max(0, args.warmup - 1),
                cooldown=args.cooldown,
                self_timed=True,
            )
            ratio = float(np.median(times["minivgg"]) / np.median(times["torch"]))
            log(
                f"{size}²: minivgg {np.median(times['minivgg']):.3f} s, torch {np.median(times['torch']):.3f} s, "
                f"ratio {ratio:.2f}"
            )
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
                rows[size]["memory"][eng] = m = run_child(
                    size, eng, args, weights_choice, args.child_timeout
                )
                log(
                    f"{size}² {eng}: "
                    + (
                        m["error"]
                        if "error" in m
                        else f"peak RSS {m['process_peak_mib']:.0f} MiB, cold eval {m['eval_s']:.2f} s"
                    )
                )
    large = []
    for size in args.large_sizes:
        for eng in args.large_engines:
            log(f"{size}² {eng}: one evaluation in a fresh process …")
            large.append(run_child(size, eng, args, weights_choice, args.child_timeout, evals=1))
    conv = conv_rows(args, weights_choice, repeats) if args.conv else None
    peers = None
    if args.peers or args.peers_only:
        peers = peer_rows(args, weights_choice, repeats)
    ops_rows = []
    if args.ops:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.op_shapes]
        log(f"per-op timings at {shapes} …")
        # eager NCHW (what the peers ship) and channels_last (oneDNN's own layout, the fastest eager torch)
        workers = {eng: Worker(eng, None, args) for eng in (*report.ENGINES, "torch:channels_last")}
        try:
            ops_rows = bench_ops.op_timings(
                shapes, max(repeats, 5), workers, cooldown=args.cooldown
            )
        finally:
            for w in workers.values():
                w.close()
    meta = {
        "command": "python -m bench.compare " + shlex.join(sys.argv[1:]),
        "date": environment.now(),
        "machine": machine,
        "versions": environment.versions(),
        "weights": weights_desc,
        "threads": args.threads,
        "thread_report": thread_reports,
        "workers": True,
        "minivgg_thread_defaults": environment.minivgg_thread_defaults(),
        "blas": environment.blas_report(),
        "torch_backend": environment.torch_backend_report(),
        "env": env_at_start,
        "note": args.note,
        "images": f"{CONTENT_IMAGE} (content), {STYLE_IMAGE} (style)",
        "noise": args.noise,
        "seed": args.seed,
        "warmup": args.warmup,
        "repeats": repeats,
        "cooldown": args.cooldown,
        "tol_loss": TOL_LOSS,
        "tol_grad": TOL_GRAD,
        "local_diff": LOCAL_DIFF,
        "tol_pixels": TOL_PIXELS,
        "load_end": " / ".join(f"{v:.2f}" for v in os.getloadavg()),
    }
    out, code = Path(args.out), 0
    if not args.peers_only:
        raw = {
            "meta": meta,
            "rows": {str(k): v for k, v in rows.items()},
            "large": large,
            "ops": ops_rows,
            "breakdown": breakdown,
            "conv": conv,
        }
        out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
        code = render_compare(raw, out)
    if peers is not None:
        peers_out = out if args.peers_only else out.with_name("peers.md")
        raw = {"meta": meta, "rows": {}, "peers": peers}
        peers_out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
        code = max(code, render_peers(raw, peers_out))
    return code


def conv_rows(args, weights_choice: str, repeats: int) -> dict:
    """A row per ``--conv`` algorithm at ``--conv-size``, against torch, in one run: the minivgg
    objective with every conv forced to that algorithm and torch's, each in its own worker,
    interleaved; the agreement of each with torch; peak RSS over ``evaluation.PEAK_EVALS``
    evaluations in a fresh process per engine."""
    size = args.conv_size
    engines = [f"minivgg:{a}" for a in args.conv] + ["torch"]
    log(f"conv algorithms at {size}²: {', '.join(engines)} …")
    workers = {eng: Worker(eng, size, args, weights_choice) for eng in engines}
    try:
        outputs = {eng: w.call("outputs") for eng, w in workers.items()}
        agree = {
            eng: agreement(
                outputs[eng][:2], outputs["torch"][:2], outputs[eng][2], outputs["torch"][2]
            )
            for eng in engines[:-1]
        }
        del outputs
        times = interleaved(
            {eng: (lambda w=w: w.call("eval")) for eng, w in workers.items()},
            repeats,
            warmup=max(0, args.warmup - 1),
            cooldown=args.cooldown,
            self_timed=True,
        )
    finally:
        for w in workers.values():
            w.close()
    out = {"size": size, "rows": {}}
    for eng in engines:
        memory = (
            {}
            if args.skip_memory
            else run_child(size, eng, args, weights_choice, args.child_timeout)
        )
        out["rows"][eng] = {"times": times[eng], "agreement": agree.get(eng), "memory": memory}
        log(
            f"{size}² {eng}: median {np.median(times[eng]):.3f} s"
            + (
                ""
                if not memory or "error" in memory
                else f", peak RSS {memory['process_peak_mib']:.0f} MiB"
            )
        )
    return out


def render(raw: dict, out: Path) -> int:
    """Rewrite the pages of an earlier run from its raw results (``--render FILE.json``): the
    two-engine page at ``out`` (its plot beside it) when there are rows, the peers page when there
    are peer rows (at ``out`` for a ``--peers-only`` run, else beside it as ``peers.md``)."""
    if not raw["rows"]:  # --peers-only
        return render_peers(raw, out)
    code = render_compare(raw, out)
    if raw.get("peers"):  # a run from before the peers had a page of their own
        code = max(code, render_peers(raw, out.with_name("peers.md")))
    return code


def render_compare(raw: dict, out: Path) -> int:
    """The two-engine page and its plot; 1 when the engines disagree at some size."""
    rows = {int(k): v for k, v in raw["rows"].items()}
    exponents = report.scaling_exponents(rows)
    transfer_json = RESULTS_DIR / "transfer_4096.json"  # python -m bench.transfer --size 4096
    transfer = json.loads(transfer_json.read_text()) if transfer_json.is_file() else None
    png = out.with_suffix(".png")
    text = report.markdown(
        raw["meta"],
        rows,
        raw["large"],
        raw["ops"],
        raw["breakdown"],
        exponents,
        transfer,
        conv=raw.get("conv"),
        plot_name=png.name,
    )
    report.plot(rows, raw["large"], exponents, png)
    save_page(out, text)
    print(text)
    log(f"wrote {out}, {png} and {out.with_suffix('.json')}")
    return 0 if all(r["agreement"]["verdict"] == "agree" for r in rows.values()) else 1


def render_peers(raw: dict, out: Path) -> int:
    """The peers page (``peers.peer_page``); 1 when a configuration disagrees with eager PyTorch."""
    text = peer_page(raw["meta"], raw["peers"])
    save_page(out, text)
    print(text)
    log(f"wrote {out}")
    return (
        0
        if all(
            r["agreement"]["verdict"] == "agree"
            for p in raw["peers"].values()
            for r in p["rows"].values()
            if r.get("agreement")
        )
        else 1
    )


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.splitlines()[0])
    p.add_argument(
        "--sizes", type=int, nargs="+", default=[256, 512, 1024], help="image sides to compare"
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed evaluations per side and size (default 5; --size-only: evaluations, default 1)",
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed evaluations per side first (≥ 1)")
    p.add_argument(
        "--cooldown",
        type=float,
        default=0.2,
        help="seconds of sleep before each timed evaluation, outside the timer "
        "(lets the other side's threads go idle)",
    )
    p.add_argument(
        "--threads", type=int, default=environment.usable_cores(), help="threads on both sides"
    )
    p.add_argument(
        "--weights",
        default="auto",
        help="auto (cached if available, else random), cached, random, or a file",
    )
    p.add_argument(
        "--images",
        type=Path,
        default=default_images_dir(),
        help="folder with tubingen.jpg and starry_night.jpg",
    )
    p.add_argument(
        "--out",
        default=None,
        help="the page to write (default bench/results/compare.md, with --peers-only "
        "bench/results/peers.md; the JSON, the PNG and peers.md go beside it)",
    )
    p.add_argument(
        "--ops",
        action="store_true",
        help="also per-op timings and a per-op breakdown of one evaluation",
    )
    p.add_argument(
        "--op-shapes",
        nargs="+",
        default=["64x256", "256x128", "512x64"],
        help="CHANNELSxSIDE for --ops",
    )
    p.add_argument(
        "--breakdown-size",
        type=int,
        default=None,
        help="size of the --ops breakdown (default: the largest size ≤ 512)",
    )
    p.add_argument(
        "--reference64",
        action="store_true",
        help="also evaluate minivgg in float64 and report each side's distance to it",
    )
    p.add_argument(
        "--skip-memory", action="store_true", help="no fresh-process peak-RSS measurements"
    )
    p.add_argument(
        "--large-sizes",
        type=int,
        nargs="*",
        default=[],
        help="sizes measured only by one evaluation in a fresh process (e.g. 4096)",
    )
    p.add_argument("--large-engines", nargs="+", default=["minivgg"], choices=["minivgg", "torch"])
    p.add_argument(
        "--child-timeout",
        type=float,
        default=7200.0,
        help="seconds allowed per fresh-process measurement",
    )
    p.add_argument(
        "--render",
        type=Path,
        default=None,
        help="only rewrite the markdown and plot from a results .json of an earlier run",
    )
    p.add_argument(
        "--size-only",
        type=int,
        default=None,
        help="just one evaluation at this size in this process",
    )
    p.add_argument(
        "--engine", default="minivgg", choices=["minivgg", "torch"], help="engine for --size-only"
    )
    p.add_argument(
        "--json", action="store_true", help="--size-only: print a BENCH_RESULT JSON line"
    )
    p.add_argument(
        "--torch-config",
        default="eager",
        choices=["eager", "channels_last", "compile"],
        help="--size-only with --engine torch: the PyTorch configuration",
    )
    p.add_argument(
        "--peers",
        action="store_true",
        help="also the peer rows at every --sizes: minivgg in both import orders against PyTorch eager, "
        "channels_last and torch.compile, interleaved, with peak RSS and the first evaluation's time",
    )
    p.add_argument(
        "--peers-only", action="store_true", help="only the peer rows (no two-engine table)"
    )
    p.add_argument(
        "--conv",
        nargs="+",
        default=[],
        choices=["auto", "im2col", "winograd"],
        help="also a row per conv algorithm at --conv-size against torch (e.g. --conv im2col winograd); "
        "--size-only: the algorithm of that one evaluation",
    )
    p.add_argument(
        "--conv-size", type=int, default=512, help="image side of the --conv rows (default 512)"
    )
    p.add_argument(
        "--noise", type=float, default=16.0, help="± uniform noise added to the content for x"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--note",
        default=None,
        help="a line shown at the top of the compare page (e.g. 'preliminary')",
    )
    args = p.parse_args(argv)
    if args.warmup < 1:
        p.error("--warmup must be at least 1 (the first evaluation is also the agreement check)")
    if min(args.sizes + ([args.size_only] if args.size_only else [])) < 16:
        p.error("sizes must be at least 16 pixels (block5_conv1 sits after four 2x2 poolings)")
    for s in args.op_shapes:
        if len(s.split("x")) != 2 or not all(v.isdigit() for v in s.split("x")):
            p.error(f"--op-shapes wants CHANNELSxSIDE like 64x256, got {s!r}")
    if not (args.images / CONTENT_IMAGE).is_file() or not (args.images / STYLE_IMAGE).is_file():
        p.error(
            f"{args.images} lacks {CONTENT_IMAGE} or {STYLE_IMAGE}; pass --images or set MINIVGG_BENCH_IMAGES"
        )
    if args.out is None and args.size_only is None and args.render is None:
        args.out = str(default_out(args.peers_only))
    return args


def default_out(peers_only: bool) -> Path:
    """Where a run's page goes unless ``--out`` says otherwise."""
    return RESULTS_DIR / ("peers.md" if peers_only else "compare.md")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        raw = json.loads(args.render.read_text())
        return render(raw, Path(args.out) if args.out else default_out(not raw["rows"]))
    return size_only(args) if args.size_only is not None else compare(args)


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bench.time_to_picture``: the time to a finished picture, route by route (issue 25).

The reference: the ``gatys`` defaults at the study's size, L-BFGS-B from the content, 500 iterations
with no convergence stop (``minivgg transfer ... --all-iters --iters 500``) → L_ref and its content,
style and TV terms (kept in ``time_to_picture_reference.json``; ``--fresh-reference`` recomputes).
An iterate is **finished** when the output-size ``gatys`` objective is ≤ 1.05·L_ref with the content
and style terms each within 15 % of the reference's (``routes.is_finished``).

For every route (``ROUTES``) and image pair: the wall time from the loaded images to the first
finished iterate, the evaluations spent, and that time in **evaluation-equivalents** (÷ the median
time of one fp32 evaluation of the output-size objective, timed in the same process), so the figure
survives this machine's noise. Routes with ``own_stop`` run to their own stop and report whether the
picture they deliver is finished. Writes ``bench/results/time_to_picture.md`` (+ ``.json``, merged
across runs, and ``.png``: loss against time for every route).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import REPO, environment
from .evaluation import default_images_dir
from .index import RESULTS_DIR, save_page
from .routes import Recorder, Route, is_finished, run_route

PAIRS = {
    "tubingen+starry_night": ("tubingen.jpg", "starry_night.jpg"),
    "tubingen+matisse": ("tubingen.jpg", "woman-with-hat-matisse.jpg"),
}
REF_ITERS = 500
JSON = RESULTS_DIR / "time_to_picture.json"
REF_JSON = RESULTS_DIR / "time_to_picture_reference.json"
PAGE = RESULTS_DIR / "time_to_picture.md"

C2F = (4, 2, 1)  # 128 → 256 → 512 at 512 px
ROUTES = {
    r.name: r
    for r in (
        Route("before", "today's default: one scale, scipy L-BFGS-B, memory 10"),
        Route("history30", "L-BFGS-B memory 30", history=30),
        Route("history100", "L-BFGS-B memory 100", history=100),
        Route("c2f", "coarse to fine 128→256→512 (100, 100)", scales=C2F, iters=(100, 100, 150)),
        Route(
            "c2f+history100",
            "coarse to fine 128→256→512 (100, 100), memory 100",
            scales=C2F,
            iters=(100, 100, 200),
            history=100,
        ),
        Route(
            "engine",
            "the engine's L-BFGS (two-loop, line search expands), memory 10",
            optimizer="lbfgs-device",
        ),
        Route(
            "engine+history30",
            "the engine's L-BFGS, memory 30",
            history=30,
            optimizer="lbfgs-device",
        ),
        Route(
            "engine+history100",
            "the engine's L-BFGS, memory 100",
            history=100,
            optimizer="lbfgs-device",
        ),
        Route("color", "decorrelated-colour parameterisation, unbounded", param="color"),
        Route(
            "pyramid",
            "Laplacian-pyramid parameterisation (4 levels), unbounded",
            param="pyramid",
            iters=(200,),
        ),
        Route(
            "torch-eager",
            "PyTorch eager, torch.optim.LBFGS",
            history=100,
            engine="torch-eager",
            iters=(300,),
        ),
        Route(
            "torch-compile",
            "PyTorch torch.compile, torch.optim.LBFGS",
            history=100,
            engine="torch-compile",
            iters=(300,),
        ),
        Route("after", "the default of minivgg transfer (no flags)", default=True, own_stop=True),
    )
}


def load_pair(pair: str, images: Path):
    """The pair's content and style as decoded uint8 arrays (what the routes start from)."""
    from PIL import Image

    out = []
    for name in PAIRS[pair]:
        with Image.open(images / name) as im:
            out.append(np.asarray(im.convert("RGB")))
    return tuple(out)


def eval_seconds(content, style, size: int, repeats: int = 5, device: str = "cpu") -> float:
    """The median time of one fp32 evaluation of the output-size objective (after a warm-up)."""
    from minivgg.run.options import RunOptions
    from minivgg.run.transfer import prepare

    run = prepare(
        content, [style], RunOptions(output=None, size=size, quiet=True, device=device), {}
    )
    x = run.obj.net.xp.asarray(run.x0)
    float(run.obj.value_and_grad(x)[0])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        float(run.obj.value_and_grad(x)[1].sum())  # the sum waits for a device to finish
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def reference(pair: str, content, style, size: int, fresh: bool) -> dict:
    """L_ref and its terms for ``pair`` at ``size`` (cached in ``REF_JSON``)."""
    from minivgg.run.options import RunOptions
    from minivgg.run.transfer import execute

    refs = json.loads(REF_JSON.read_text()) if REF_JSON.is_file() else {}
    key = f"{pair}@{size}"
    if key in refs and not fresh:
        return refs[key]
    opts = RunOptions(
        output=None, size=size, init="content", iters=REF_ITERS, all_iters=True, quiet=True
    )
    t = time.perf_counter()
    _, log = execute(content, [style], opts, {})
    last = log["iterations"][-1]
    refs[key] = {
        "total": last["loss"],
        "content": last["content"],
        "style": last["style"],
        "tv": last["tv"],
        "iterations": len(log["iterations"]),
        "seconds": round(time.perf_counter() - t, 1),
        "command": f"minivgg transfer {' '.join(PAIRS[pair])} --size {size} --init content "
        f"--all-iters --iters {REF_ITERS}",
    }
    REF_JSON.write_text(json.dumps(refs, indent=1))
    return refs[key]


def measure(route: Route, content, style, size: int, ref: dict, device: str = "cpu") -> dict:
    """One route's row: time, evaluations and evaluation-equivalents to its first finished iterate
    (or, with ``own_stop``, to its own end), and its curve."""
    rec = Recorder(ref, keep_going=route.own_stop)
    t = time.perf_counter()
    run_route(route, content, style, size, rec, device)
    wall = time.perf_counter() - t
    hit = rec.first_finished
    last = rec.rows[-1] if rec.rows else {}
    row = {
        "route": route.name,
        "lever": route.lever,
        "finished": hit is not None,
        "seconds": round(hit["seconds"], 2) if hit else None,
        "evaluations": hit["evaluations"] if hit else None,
        "ran_seconds": round(wall, 2),
        "ran_evaluations": last.get("evaluations"),
        "end_total_over_ref": round(last.get("total", float("nan")) / ref["total"], 4),
        "curve": [[round(r["seconds"], 2), r["total"]] for r in rec.rows if r["final_scale"]],
    }
    if route.own_stop:
        row["delivered_finished"] = bool(rec.rows) and is_finished(last, ref)
        row["own_stop_seconds"] = round(last.get("seconds", wall), 2)
    return row


def render(results: dict, refs: dict) -> str:
    """The page: per pair and size, the reference and one row per route."""
    lines = [
        "# Time to a finished picture (issue 25)",
        "",
        "Finished: the output-size `gatys` objective ≤ 1.05·L_ref with the content and style terms "
        "each within 15 % of the reference's (500 L-BFGS-B iterations from the content, "
        "`--all-iters`). Time from the loaded images; evaluation-equivalents (ev-eq) = that time ÷ "
        "one fp32 evaluation of the output-size objective timed in the same run. Loss against "
        "time: [time_to_picture.png](time_to_picture.png).",
        "",
    ]
    for key, block in sorted(results.items()):
        ref = refs.get(key, {})
        lines += [
            f"## {key}",
            "",
            f"- reference: L_ref {ref.get('total', float('nan')):.4g} (content "
            f"{ref.get('content', float('nan')):.4g}, style {ref.get('style', float('nan')):.4g}, "
            f"tv {ref.get('tv', float('nan')):.4g}); `{ref.get('command', '')}`",
            f"- one evaluation: {block.get('eval_seconds', float('nan')):.3f} s (median; "
            f"{block.get('conditions', '')})",
            "",
            "| route | lever | finished | seconds | evaluations | ev-eq | ran (s) | end L/L_ref |",
            "|---|---|---|---|---|---|---|---|",
        ]

        def eq(seconds, unit):
            return "—" if seconds is None or unit is None else f"{seconds / unit:.0f}"

        for name, r in block["routes"].items():
            unit = r.get("eval_seconds", block.get("eval_seconds"))
            own = (
                f" (own stop at {r['own_stop_seconds']} s = {eq(r['own_stop_seconds'], unit)} ev-eq, "
                f"delivered finished: {r['delivered_finished']})"
                if "own_stop_seconds" in r
                else ""
            )
            lines.append(
                f"| {name} | {r['lever']}{own} | {'yes' if r['finished'] else 'no'} | "
                f"{r['seconds'] if r['finished'] else '—'} | {r['evaluations'] or '—'} | "
                f"{eq(r['seconds'], unit)} | {r['ran_seconds']} | {r['end_total_over_ref']} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(results: dict, refs: dict, path: Path) -> None:
    """Loss / L_ref against seconds, every route, one panel per pair and size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(results)
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, r in results[key]["routes"].items():
            if r["curve"]:
                t, loss = zip(*r["curve"])
                ax.plot(t, np.asarray(loss) / refs[key]["total"], label=name, lw=1.2)
        ax.axhline(1.05, color="k", ls="--", lw=0.8)
        ax.set(yscale="log", ylim=(0.9, 10), xlabel="seconds from the loaded images")
        ax.set(ylabel="loss / L_ref (final scale)", title=key)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _run_pairs(a, images: Path, routes: list[str], child: bool) -> None:
    """Measure ``routes`` for every pair, merging into ``JSON`` (re-read first: a child may have written)."""
    for pair in a.pairs:
        content, style = load_pair(pair, images)
        key = f"{pair}@{a.size}" + ("" if a.device == "cpu" else f"/{a.device}")
        ref = reference(pair, content, style, a.size, a.fresh_reference and not child)
        unit = None if child else eval_seconds(content, style, a.size, device=a.device)
        for name in routes:
            print(f"{key}: {name} ...", flush=True)
            row = measure(ROUTES[name], content, style, a.size, ref, a.device)
            if unit is not None:  # this process's evaluation, timed before its routes
                row["eval_seconds"] = round(unit, 4)
            results = json.loads(JSON.read_text()) if JSON.is_file() else {}
            results.setdefault(key, {"routes": {}})["routes"][name] = row
            JSON.write_text(json.dumps(results, indent=1))
            print({k: v for k, v in row.items() if k != "curve"}, flush=True)
        if unit is not None:  # minivgg's evaluation, timed in a process that never imported torch
            results = json.loads(JSON.read_text())
            block = results[key]
            block["eval_seconds"] = statistics.median(
                [unit, eval_seconds(content, style, a.size, device=a.device)]
            )
            block["conditions"] = (
                f"{environment.cpu_model()}, {a.threads} threads, "
                f"git {environment.git_revision(REPO)}, {environment.now()}"
            )
            JSON.write_text(json.dumps(results, indent=1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.time_to_picture", description=__doc__)
    p.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    p.add_argument("--routes", nargs="+", default=list(ROUTES), choices=list(ROUTES))
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--threads", type=int, default=environment.usable_cores())
    p.add_argument("--images", type=Path, default=None)
    p.add_argument("--fresh-reference", action="store_true")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="minivgg's device")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    images = a.images or default_images_dir()
    torch_routes = [r for r in a.routes if ROUTES[r].engine.startswith("torch")]
    own = [r for r in a.routes if r not in torch_routes]
    if a.child:
        environment.pin_threads(a.threads, torch_too=True)
        _run_pairs(a, images, torch_routes, child=True)
        return 0
    # minivgg runs in a process that never imports torch (its OpenMP runtime slows minivgg ~25 %);
    # the torch routes run after it, in a child of their own.
    environment.pin_threads(a.threads, torch_too=False)
    _run_pairs(a, images, own, child=False)
    if torch_routes:
        cmd = [sys.executable, "-m", "bench.time_to_picture", "--child", "--routes", *torch_routes]
        cmd += ["--pairs", *a.pairs, "--size", str(a.size), "--threads", str(a.threads)]
        if a.images:
            cmd += ["--images", str(a.images)]
        subprocess.run(cmd, check=True, cwd=REPO, env=environment.thread_env(a.threads))
    results = json.loads(JSON.read_text())
    refs = json.loads(REF_JSON.read_text())
    plot(results, refs, RESULTS_DIR / "time_to_picture.png")
    save_page(PAGE, render(results, refs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

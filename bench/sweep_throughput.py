"""``python -m bench.sweep_throughput``: the throughput of ``minivgg sweep`` on its default LocalCluster
against the same jobs run one after another with ``minivgg transfer`` (issue 16).

Both sides run the user's commands in fresh processes on ``tubingen.jpg`` + ``starry_night.jpg`` at
``--size`` with ``--iters`` L-BFGS iterations (``--all-iters``: every job does the same work), over
the 2x2 grid style_weight × tv_weight: first the four transfers in turn (each with all the cores),
then one sweep (its cluster sized by ``minivgg.tools.cluster.local_size``). Prints its page and
writes it to ``bench/results/sweep_throughput.md`` (the raw numbers to ``sweep_throughput.json``),
regenerates ``bench/results.md`` (``bench.index``), and with ``--sheet-jpg`` saves the sweep's
contact sheet as a small JPEG (512 px wide) for the README.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import REPO, environment
from .evaluation import CONTENT_IMAGE, STYLE_IMAGE, default_images_dir
from .index import RESULTS_DIR, save_page

HEADING = "# Sweep throughput: `minivgg sweep` on Dask against one `minivgg transfer` after another"
GRID = {"style_weight": ["1e3", "1e4"], "tv_weight": ["0", "1e-3"]}


def _run(cmd, cwd) -> float:
    """Run ``cmd`` (the minivgg arguments) in a fresh process; its wall time in seconds (exit on failure)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "minivgg", *cmd], cwd=cwd, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(
            f"minivgg {shlex.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}"
        )
    return wall


def _section(args, sequential, sweep_wall, summary, load) -> str:
    n = len(sequential)
    seq_total = sum(sequential)
    job_s = sorted(j["seconds"] for j in summary["jobs"])
    flags = f"--size {args.size} --iters {args.iters} --all-iters"
    grid = " ".join(f"--grid {k}={','.join(v)}" for k, v in GRID.items())
    loaded = max(load) > 0.5 * environment.usable_cores()
    lines = [
        HEADING,
        "",
        f"- command: `python -m bench.sweep_throughput --size {args.size} --iters {args.iters}`; "
        f"images {CONTENT_IMAGE} + {STYLE_IMAGE}; {n} jobs ({' × '.join(GRID)} = "
        f"{' × '.join(str(len(v)) for v in GRID.values())})",
        f"- one after another: `minivgg transfer {CONTENT_IMAGE} {STYLE_IMAGE} -o OUT --style-weight W "
        f"--tv-weight T {flags} --quiet`, {n} fresh processes, each with every core",
        f"- sweep: `minivgg sweep {CONTENT_IMAGE} {STYLE_IMAGE} {grid} {flags} -o DIR --quiet` on "
        f"{summary['cluster']['description']}",
        f"- date: {environment.now()}; machine: "
        + "; ".join(f"{k} {v}" for k, v in environment.machine_report().items()),
        f"- load average (1 min) before, between and after: {', '.join(f'{x:.2f}' for x in load)}"
        + (
            " — **measured under load**: other jobs shared this machine's cores, so the speed-up mostly "
            "measures how much of the contended cores each side got (a two-threaded job waits at every GEMM "
            "for its descheduled thread; single-threaded workers do not)"
            if loaded
            else ""
        ),
        "",
        "| run | wall time | jobs per minute | per job (min … max) | speed-up |",
        "|---|---:|---:|---:|---:|",
        f"| {n} × `minivgg transfer`, one after another | {seq_total:.1f} s | {60 * n / seq_total:.2f} | "
        f"{min(sequential):.1f} … {max(sequential):.1f} s | 1.00× |",
        f"| `minivgg sweep`, {summary['cluster']['workers']} workers × "
        f"{summary['cluster']['threads_per_worker']} thread(s) | {sweep_wall:.1f} s | {60 * n / sweep_wall:.2f} | "
        f"{job_s[0]:.1f} … {job_s[-1]:.1f} s | **{seq_total / sweep_wall:.2f}×** |",
        "",
        "Wall times include each process's start, the weights loading and writing the outputs (the sweep's: "
        "starting the cluster, the summary and the sheet); a sweep job's time is measured in its worker.",
    ]
    return "\n".join(lines) + "\n"


def _sheet_jpeg(sheet: Path, out: Path, width: int = 512) -> None:
    from PIL import Image

    with Image.open(sheet) as im:
        im = im.convert("RGB")
        im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
        out.parent.mkdir(parents=True, exist_ok=True)
        im.save(out, "JPEG", quality=85, optimize=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.sweep_throughput", description=__doc__.splitlines()[0]
    )
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--images", type=Path, default=default_images_dir())
    p.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR / "sweep_throughput.md",
        help="the page to write (default bench/results/sweep_throughput.md, the JSON "
        "beside it); '-' prints only",
    )
    p.add_argument(
        "--sheet-jpg", type=Path, help="also save the sweep's contact sheet here, 512 px wide"
    )
    args = p.parse_args(argv)
    content, style = str(args.images / CONTENT_IMAGE), str(args.images / STYLE_IMAGE)
    common = ["--size", str(args.size), "--iters", str(args.iters), "--all-iters", "--quiet"]
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="minivgg-sweep-bench-") as tmp:
        tmp = Path(tmp)
        sequential = []
        for k, (sw, tv) in enumerate(itertools.product(*GRID.values())):
            sequential.append(
                _run(
                    [
                        "transfer",
                        content,
                        style,
                        "-o",
                        str(tmp / f"seq_{k}.png"),
                        "--style-weight",
                        sw,
                        "--tv-weight",
                        tv,
                        *common,
                    ],
                    REPO,
                )
            )
            print(
                f"transfer style_weight={sw} tv_weight={tv}: {sequential[-1]:.1f} s",
                file=sys.stderr,
            )
        load.append(os.getloadavg()[0])
        grid = [a for k, v in GRID.items() for a in ("--grid", f"{k}={','.join(v)}")]
        sweep_wall = _run(["sweep", content, style, *grid, "-o", str(tmp / "sweep"), *common], REPO)
        print(f"sweep: {sweep_wall:.1f} s", file=sys.stderr)
        load.append(os.getloadavg()[0])
        summary = json.loads((tmp / "sweep" / "sweep.json").read_text())
        if args.sheet_jpg:
            _sheet_jpeg(tmp / "sweep" / "sheet.png", args.sheet_jpg)
    page = _section(args, sequential, sweep_wall, summary, load)
    print(page)
    if str(args.out) != "-":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(
            json.dumps(
                {
                    "command": f"python -m bench.sweep_throughput --size {args.size} --iters {args.iters}",
                    "date": environment.now(),
                    "grid": GRID,
                    "sequential_s": sequential,
                    "sweep_wall_s": sweep_wall,
                    "sweep_jobs_s": [j["seconds"] for j in summary["jobs"]],
                    "cluster": summary["cluster"],
                    "load_1min": load,
                },
                indent=1,
            )
        )
        save_page(args.out, page)
    return 0


if __name__ == "__main__":
    sys.exit(main())

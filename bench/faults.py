"""``python -m bench.faults``: where an evaluation's time goes besides computing: user and system CPU
seconds and minor page faults per evaluation, for minivgg (untiled or tiled, with or without its
arena) or a PyTorch configuration, in this one process.

On a machine that hands out fresh pages slowly (this project's VM, at times), an engine that
allocates its large arrays afresh each evaluation spends seconds in the kernel faulting them in; the
system time and fault count show it. ``--no-arena`` runs minivgg as it was before ``minivgg/engine/arena.py``
(every plan over ``arena.MAX_BYTES = 0``). Each line is one evaluation after ``--warmup`` untimed ones.
The run replaces the earlier one of the same configuration (engine, size, tile, arena) in
``bench/results/faults.json``; ``bench/results/faults.md`` shows the latest run of each, and
``bench/results.md`` is regenerated (``bench.index``); ``--out -`` only prints.

    python -m bench.faults --size 1024                       # minivgg, untiled
    python -m bench.faults --size 1024 --no-arena            # the same, fresh memory every evaluation
    python -m bench.faults --size 2048 --tile 1024           # tiled
    python -m bench.faults --size 512 --engine torch:compile # eager 'torch', 'torch:channels_last', 'torch:compile'
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import sys
import time
from pathlib import Path

from . import environment
from .evaluation import build, default_images_dir, load_images, load_network, start_point
from .index import RESULTS_DIR, save_page

PAGE = RESULTS_DIR / "faults.md"
KEY = ("engine", "size", "tile", "arena")


def measure(args) -> list[dict]:
    """One record per timed evaluation: seconds, user and system CPU seconds, minor faults, peak RSS."""
    name = args.engine.partition(":")[0]
    environment.pin_threads(args.threads, torch_too=name == "torch")
    net, _, _ = load_network(args.weights)
    content, style = load_images(args.size, args.images)
    x = start_point(content, 16.0, 0)
    if name == "minivgg":
        from minivgg.engine import arena
        from minivgg.style.objective import Objective

        if args.no_arena:
            arena.MAX_BYTES = 0
        objective = Objective(net, content, style, "gatys", tile_size=args.tile)
    else:
        if args.tile:
            raise SystemExit("--tile is minivgg's")
        objective = build(args.engine, net, content, style)
    for _ in range(args.warmup):
        objective.value_and_grad(x)
    out = []
    for _ in range(args.evals):
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        objective.value_and_grad(x)
        t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        out.append(
            {
                "engine": args.engine,
                "size": args.size,
                "tile": args.tile,
                "arena": not args.no_arena,
                "eval_s": t1 - t0,
                "user_s": r1.ru_utime - r0.ru_utime,
                "sys_s": r1.ru_stime - r0.ru_stime,
                "minor_faults": r1.ru_minflt - r0.ru_minflt,
                "peak_rss_mib": r1.ru_maxrss / 1024,
            }
        )
    return out


def _cells(values, fmt) -> str:
    return ", ".join(format(v, fmt) for v in values)


def faults_page(data: dict) -> str:
    """The page ``bench/results/faults.md``: the latest run of each configuration."""
    L = [
        "# Page faults and system time per evaluation",
        "",
        "`python -m bench.faults`: user and system CPU seconds and minor page faults of each "
        "timed evaluation (after the untimed warm-up ones), all in one process; the latest run of "
        "each configuration.",
        "",
        "| engine | size | tile | arena | s per evaluation | user s | system s | minor faults "
        "| peak RSS MiB | command | date | load average |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for run in data.get("runs", []):
        recs = run["records"]
        arena = "—" if not run["engine"].startswith("minivgg") else "on" if run["arena"] else "off"
        L.append(
            f"| {run['engine']} | {run['size']}² | {run['tile'] or 'untiled'} | {arena} "
            f"| {_cells((r['eval_s'] for r in recs), '.3f')} "
            f"| {_cells((r['user_s'] for r in recs), '.2f')} "
            f"| {_cells((r['sys_s'] for r in recs), '.2f')} "
            f"| {_cells((r['minor_faults'] for r in recs), 'd')} "
            f"| {max(r['peak_rss_mib'] for r in recs):.0f} | `{run['command']}` "
            f"| {run['date']} | {run['load_start']} → {run['load_end']} |"
        )
    return "\n".join(L) + "\n"


def save(records: list[dict], args, argv, load_start: str, page: Path) -> None:
    """Put this run into the JSON beside ``page`` (in place of the same configuration's earlier
    run) and rewrite the page."""
    path = page.with_suffix(".json")
    data = json.loads(path.read_text()) if path.is_file() else {"runs": []}
    run = {
        "engine": args.engine,
        "size": args.size,
        "tile": args.tile,
        "arena": not args.no_arena,
        "command": "python -m bench.faults " + shlex.join(argv),
        "date": environment.now(),
        "warmup": args.warmup,
        "threads": args.threads,
        "load_start": load_start,
        "load_end": " / ".join(f"{v:.2f}" for v in os.getloadavg()),
        "records": records,
    }
    runs = [r for r in data["runs"] if [r[k] for k in KEY] != [run[k] for k in KEY]] + [run]
    data["runs"] = sorted(runs, key=lambda r: (r["engine"], r["size"], r["tile"] or 0, r["arena"]))
    page.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    save_page(page, faults_page(data))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--tile", type=int, default=None, help="minivgg's tile size (default: untiled)")
    p.add_argument(
        "--engine", default="minivgg", help="minivgg, torch, torch:channels_last or torch:compile"
    )
    p.add_argument("--no-arena", action="store_true", help="minivgg without its arena")
    p.add_argument("--evals", type=int, default=3)
    p.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="untimed evaluations first (the arena records in the first)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--weights", default="auto")
    p.add_argument("--images", type=Path, default=default_images_dir())
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--out",
        default=str(PAGE),
        help="the page to write (default bench/results/faults.md, faults.json beside "
        "it, keeping the other configurations' runs); '-' prints only",
    )
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    load_start = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    records = measure(args)
    for r in records:
        print(
            json.dumps(r)
            if args.json
            else f"{r['engine']} {r['size']}²{' T=' + str(r['tile']) if r['tile'] else ''}"
            f"{'' if r['arena'] or not r['engine'].startswith('minivgg') else ' (no arena)'}: "
            f"{r['eval_s']:.3f} s, user {r['user_s']:.2f} s, system {r['sys_s']:.2f} s, "
            f"{r['minor_faults']} minor faults, peak RSS {r['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
    if args.out != "-":
        save(records, args, argv, load_start, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

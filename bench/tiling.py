"""``python -m bench.tiling [memory] [overhead] [transfer]``: what tiled evaluation (issue 15) saves and
costs, each measurement in a fresh process of its own.

- ``memory``: peak RSS of one ``gatys`` evaluation (value and gradient) at ``--memory-size`` (4096²)
  in tiles of ``--memory-tile`` (1024), beside the same evaluation untiled (``--memory-untiled``).
- ``overhead``: seconds per evaluation at ``--overhead-sizes`` (1024², 2048²), untiled and in tiles of
  ``--overhead-tiles`` (256, 512, 1024), against the two predictions: ``(1 + 2h/T)²`` (the halo's
  share of an interior window) and the grid's exact window area over the image's (edge windows are
  cut at the border). Pass 1 is one more forward pass per tile, so the time ratio should be about
  the area ratio times (1 + the forward's share of an evaluation, ~⅓).
- ``transfer``: a whole ``minivgg transfer --tile-size T`` at ``--transfer-size`` (8192²), ``--iters``
  iterations, gatys defaults (tubingen centre-cropped to a square, starry_night): peak RSS, the
  lowest MemAvailable, and the time of every evaluation (timed around ``Objective.value_and_grad`` in
  the transfer's own process, which otherwise runs the CLI unchanged).

Peak RSS is each child's own ``VmHWM`` (``/proc/self/status``; for one evaluation the mark is reset
after building the objective and both peaks are kept). Results are merged into
``bench/results/tiling.json``, the page ``bench/results/tiling.md`` is rewritten from it, and
``bench/results.md`` is regenerated (``bench.index``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import REPO, environment
from .evaluation import STYLE_IMAGE, default_images_dir, load_images, square_content, start_point
from .index import RESULTS_DIR, save_page
from .timing import peak_rss_mib, proc_kib, reset_peak_rss, rss_mib

JSON_PATH = RESULTS_DIR / "tiling.json"
PAGE = RESULTS_DIR / "tiling.md"


# ------------------------------------------------------------------------------ children


def child_eval(size: int, tile: int, evals: int, images: Path) -> dict:
    """One process: build the gatys objective at size² (tiled when ``tile``), time ``evals`` evaluations."""
    import minivgg  # noqa: F401  first: its thread defaults
    from minivgg.network.vgg import load_vgg
    from minivgg.style.objective import Objective

    net = load_vgg("vgg16")
    content, style = load_images(size, images)
    x = start_point(content, 30.0, 0)
    t0 = time.perf_counter()
    obj = Objective(net, content, style, preset="gatys", tile_size=tile or None)
    out = {
        "size": size,
        "tile": tile,
        "setup_s": time.perf_counter() - t0,
        "setup_peak_mib": peak_rss_mib(),
    }
    del content, style
    gc.collect()
    out["rss_after_setup_mib"], out["peak_reset"] = rss_mib(), reset_peak_rss()
    times = []
    for _ in range(evals):
        t0 = time.perf_counter()
        value, grad = obj.value_and_grad(x)
        times.append(time.perf_counter() - t0)
        del grad
    out.update(eval_s=times, loss=value, eval_peak_mib=peak_rss_mib())
    out["process_peak_mib"] = max(out["setup_peak_mib"], out["eval_peak_mib"])
    if obj.tiling is not None:
        tiles = obj.tiling.tiles(size, size)
        area = sum((t.rows[3] - t.rows[2]) * (t.cols[3] - t.cols[2]) for t in tiles)
        out.update(
            halo=obj.tiling.halo,
            tiles=len(tiles),
            area_ratio=area / size**2,
            halo_ratio=(1 + 2 * obj.tiling.halo / obj.tiling.tile) ** 2,
        )
    return out


def child_transfer(argv: list) -> dict:
    """One process: ``minivgg transfer ARGV`` through the CLI, every evaluation timed."""
    import minivgg  # noqa: F401
    from minivgg.cli import main
    from minivgg.style.objective import Objective

    evals = []
    inner = Objective.value_and_grad

    def timed(self, x):
        t0 = time.perf_counter()
        try:
            return inner(self, x)
        finally:
            evals.append(time.perf_counter() - t0)

    Objective.value_and_grad = timed
    t0 = time.perf_counter()
    code = main(argv)
    return {
        "exit_status": code,
        "wall_s": time.perf_counter() - t0,
        "eval_s": evals,
        "peak_mib": peak_rss_mib(),
    }


def run_child(args: list, timeout: float) -> dict:
    """Run ``python -m bench.tiling --child …`` and return its ``BENCH_RESULT`` (or an error), with the
    lowest MemAvailable and the highest sampled VmRSS while it ran."""
    cmd = [sys.executable, "-m", "bench.tiling", *args]
    low, high = proc_kib("/proc/meminfo", "MemAvailable"), 0
    load_start = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def sample():
        nonlocal low, high
        while proc.poll() is None:
            avail, rss = (
                proc_kib("/proc/meminfo", "MemAvailable"),
                proc_kib(f"/proc/{proc.pid}/status", "VmRSS"),
            )
            low = min(low, avail) if low and avail else low
            high = max(high, rss or 0)
            time.sleep(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        return {"error": f"timed out after {timeout:.0f} s"}
    sampler.join(2)
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    for line in stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            res = json.loads(line[len("BENCH_RESULT ") :])
            res.update(
                min_available_gib=low / 2**20 if low else None,
                sampled_rss_gib=high / 2**20,
                load_start=load_start,
                load_end=load,
            )
            return res
    return {"error": f"exit {proc.returncode}: {stderr.strip()[-400:]}"}


# -------------------------------------------------------------------------------- page

TITLE = "# Tiled evaluation"


def _gib(mib):
    return "—" if mib is None else f"{mib / 1024:.2f} GiB"


def _memory_rows(mem: list) -> list[str]:
    L = [
        "## Peak memory of one evaluation",
        "",
        "| size | tiles | peak RSS, whole process | peak RSS during the evaluation "
        "| RSS after setup | setup s | evaluation s | load average (1/5/15 min) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in mem:
        if "error" in r:
            L.append(
                f"| {r.get('size', '?')}² | {r.get('tile') or 'untiled'} "
                f"| error: {r['error'][:80]} | | | | |"
            )
            continue
        tiles = f"{r['tile']} ({r['tiles']} tiles)" if r["tile"] else "untiled"
        L.append(
            f"| {r['size']}² | {tiles} | **{_gib(r['process_peak_mib'])}** "
            f"| {_gib(r['eval_peak_mib'])} | {_gib(r['rss_after_setup_mib'])} "
            f"| {r['setup_s']:.0f} | {r['eval_s'][0]:.0f} "
            f"| {r.get('load_start', '')} → {r.get('load_end', '')} |"
        )
    return L + [""]


def _overhead_rows(over: list, evals) -> list[str]:
    L = [
        "## Time overhead",
        "",
        f"Seconds per evaluation (the last of each child's {evals}; a child's first one also "
        "builds the backward kernels' transforms), against the untiled evaluation at the same "
        "size, beside (1 + 2h/T)² and the grid's exact window area over the image's. Pass 1 is "
        "one more forward pass per tile, so the ratio over the area ratio should be about 1 + "
        "the forward's share of an evaluation (~⅓).",
        "",
        "| size | tile | tiles | s per evaluation | time ratio | (1 + 2h/T)² | window area ratio "
        "| ratio / area ratio | load average |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    base = {r["size"]: r["eval_s"][-1] for r in over if not r.get("tile") and "error" not in r}
    for r in over:
        if "error" in r:
            L.append(
                f"| {r.get('size', '?')}² | {r.get('tile') or '—'} | "
                f"| error: {r['error'][:80]} | | | | |"
            )
            continue
        t = r["eval_s"][-1]
        ratio = t / base[r["size"]] if r["size"] in base else None
        if not r["tile"]:
            L.append(
                f"| {r['size']}² | untiled | 1 | {t:.1f} | 1 | | | | {r.get('load_end', '')} |"
            )
        else:
            L.append(
                f"| {r['size']}² | {r['tile']} | {r['tiles']} | {t:.1f} | {ratio:.2f} "
                f"| {r['halo_ratio']:.2f} | {r['area_ratio']:.2f} "
                f"| {ratio / r['area_ratio']:.2f} | {r.get('load_end', '')} |"
            )
    return L + [""]


def _transfer_lines(tr: dict) -> list[str]:
    L = ["## A whole transfer", "", f"`{tr['shown']}`:", ""]
    if "error" in tr:
        return L + [f"- error: {tr['error']}", ""]
    ev = tr["eval_s"]
    peak = f"- **peak RSS {_gib(tr['peak_mib'])}**"
    if tr.get("min_available_gib"):
        peak += (
            f" (the process's VmHWM; sampled VmRSS peak {tr['sampled_rss_gib']:.2f} GiB); "
            f"lowest MemAvailable on the machine during the run "
            f"{tr['min_available_gib']:.2f} GiB"
        )
    return L + [
        f"- exit status {tr['exit_status']}; wall time {tr['wall_s']:.0f} s, of which {len(ev)} "
        f"evaluations ({len(ev) - 1} during {tr['iters']} L-BFGS iterations, the last one the "
        "final loss): " + ", ".join(f"{t:.0f}" for t in ev) + " s",
        peak,
        f"- estimate (`memory.estimate_bytes`): {tr['estimate_gib']:.2f} GiB; load average "
        f"{tr.get('load_start', '?')} at the start, {tr.get('load_end', '?')} at the end",
        "",
    ]


def tiling_page(data: dict) -> str:
    """The page ``bench/results/tiling.md`` from ``tiling.json``."""
    L = [
        TITLE,
        "",
        "Exact tiled evaluation (`Objective(…, tile_size=T)`, `transfer --tile-size T`, "
        "issue 15): the `gatys` objective on T×T tiles with a 64-pixel halo (VGG16 to "
        "block5_conv1), the untiled loss and gradient to float32 rounding. Each row is one "
        "fresh process "
        f"(`{data.get('command', 'python -m bench.tiling')}`, {data.get('date', '?')}; "
        f"{data.get('machine', '')}).",
        "",
    ]
    if data.get("memory"):
        L += _memory_rows(data["memory"])
    if data.get("overhead"):
        L += _overhead_rows(data["overhead"], data.get("evals", "?"))
    for note in data.get("notes", ()):
        L += [f"> {note}", ""]
    if data.get("transfer"):
        L += _transfer_lines(data["transfer"])
    return "\n".join(L)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child-eval"]:
        size, tile, evals = (int(v) for v in argv[1:4])
        print("BENCH_RESULT " + json.dumps(child_eval(size, tile, evals, Path(argv[4]))))
        return 0
    if argv[:1] == ["--child-transfer"]:
        print("BENCH_RESULT " + json.dumps(child_transfer(argv[1:])))
        return 0
    p = argparse.ArgumentParser(prog="python -m bench.tiling", description=__doc__.splitlines()[0])
    p.add_argument(
        "what",
        nargs="*",
        default=["memory", "overhead", "transfer"],
        help="memory, overhead and/or transfer (default: all three)",
    )
    p.add_argument("--images", type=Path, default=default_images_dir())
    p.add_argument("--memory-size", type=int, default=4096)
    p.add_argument("--memory-tile", type=int, default=1024)
    p.add_argument(
        "--memory-untiled",
        action="store_true",
        help="also measure the untiled evaluation at that size",
    )
    p.add_argument("--overhead-sizes", type=int, nargs="+", default=[1024, 2048])
    p.add_argument("--overhead-tiles", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument(
        "--evals", type=int, default=2, help="evaluations per overhead child (the last is reported)"
    )
    p.add_argument("--transfer-size", type=int, default=8192)
    p.add_argument("--transfer-tile", type=int, default=1024)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--timeout", type=float, default=4 * 3600)
    args = p.parse_args(argv)
    data = json.loads(JSON_PATH.read_text()) if JSON_PATH.is_file() else {}
    data.update(
        date=environment.now(),
        command="python -m bench.tiling " + " ".join(argv),
        machine=", ".join(
            f"{k} {v}"
            for k, v in environment.machine_report().items()
            if k in ("cpu", "cores", "memory")
        ),
    )
    images = str(args.images)
    if "memory" in args.what:
        tiles = [args.memory_tile] + ([0] if args.memory_untiled else [])
        data["memory"] = [
            run_child(["--child-eval", str(args.memory_size), str(t), "1", images], args.timeout)
            for t in tiles
        ]
        print(json.dumps(data["memory"], indent=1))
    if "overhead" in args.what:
        data["overhead"], data["evals"] = [], args.evals
        for size in args.overhead_sizes:
            for tile in [0] + [t for t in args.overhead_tiles if t < size]:
                r = run_child(
                    ["--child-eval", str(size), str(tile), str(args.evals), images], args.timeout
                )
                data["overhead"].append(r)
                print(
                    f"{size}² tile {tile or 'untiled'}: {r.get('eval_s', r.get('error'))}",
                    flush=True,
                )
    if "transfer" in args.what:
        from minivgg.style.memory import estimate_bytes
        from minivgg.style.presets import resolve_settings

        n, tile = args.transfer_size, args.transfer_tile
        with tempfile.TemporaryDirectory(prefix="minivgg-tiling-") as tmp:
            content = square_content(args.images, n, Path(tmp))
            cli = [
                "transfer",
                str(content),
                str(args.images / STYLE_IMAGE),
                "-o",
                str(Path(tmp) / "out.jpg"),
                "--size",
                str(n),
                "--iters",
                str(args.iters),
                "--tile-size",
                str(tile),
                "--quiet",
            ]
            r = run_child(["--child-transfer", *cli], args.timeout)
        s = resolve_settings("gatys", {})
        r.update(
            iters=args.iters,
            shown=f"minivgg transfer content_{n}.png {STYLE_IMAGE} -o out.jpg --size {n} "
            f"--iters {args.iters} --tile-size {tile} --quiet",
            estimate_gib=estimate_bytes(
                "vgg16",
                n,
                n,
                list(s["content_layers"]) + list(s["style_layers"]),
                "lbfgs",
                tile,
                s["content_layers"],
            )
            / 2**30,
        )
        data["transfer"] = r
        print(json.dumps(r, indent=1))
    JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps(data, indent=1))
    text = tiling_page(data)
    save_page(PAGE, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

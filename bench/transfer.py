"""``python -m bench.transfer --size 4096 --iters 3``: a whole ``minivgg transfer`` run, with its wall time
and peak memory (issue 5, target 3: a full transfer at 4096² within 24 GB).

The content is ``tubingen.jpg`` centre-cropped to a square and resized to ``--size`` (a square image,
so the run really has size² pixels). It is written to a temporary folder, together with the output.
The command is the user's: ``minivgg transfer CONTENT starry_night.jpg -o OUT --size N --iters K``
with the ``gatys`` defaults, in a fresh process. Peak RSS is that child's ``ru_maxrss``
(``RUSAGE_CHILDREN``; the driver forks it while small). It is also sampled from ``/proc`` once a
second, and the machine's lowest ``MemAvailable`` is recorded. Writes
``bench/results/transfer_SIZE.md`` and ``.json`` (``bench.report`` quotes the JSON under target 3)
and regenerates ``bench/results.md`` (``bench.index``).
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import REPO, environment
from .evaluation import STYLE_IMAGE, default_images_dir, square_content
from .index import RESULTS_DIR, save_page
from .timing import proc_kib


def _meminfo_kib(field: str):
    return proc_kib("/proc/meminfo", field)


def _rss_kib(pid: int):
    return proc_kib(f"/proc/{pid}/status", "VmRSS")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.transfer", description=__doc__.splitlines()[0]
    )
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--images", type=Path, default=default_images_dir())
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="markdown output (default bench/results/transfer_SIZE.md; JSON beside it)",
    )
    args = p.parse_args(argv)
    out_md = args.out or RESULTS_DIR / f"transfer_{args.size}.md"
    with tempfile.TemporaryDirectory(prefix="minivgg-transfer-") as tmp:
        tmp = Path(tmp)
        content = square_content(args.images, args.size, tmp)
        cmd = [
            sys.executable,
            "-m",
            "minivgg",
            "transfer",
            str(content),
            str(args.images / STYLE_IMAGE),
            "-o",
            str(tmp / "out.jpg"),
            "--size",
            str(args.size),
            "--iters",
            str(args.iters),
            "--log",
            str(tmp / "log.json"),
            "--quiet",
        ]
        shown = (
            f"minivgg transfer content_{args.size}.png {STYLE_IMAGE} -o out.jpg --size {args.size} "
            f"--iters {args.iters} --log log.json --quiet"
        )
        samples = {"rss_kib": 0, "min_available_kib": _meminfo_kib("MemAvailable")}
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

        def sample():
            while proc.poll() is None:
                rss, avail = _rss_kib(proc.pid), _meminfo_kib("MemAvailable")
                if rss:
                    samples["rss_kib"] = max(samples["rss_kib"], rss)
                if avail is not None and samples["min_available_kib"] is not None:
                    samples["min_available_kib"] = min(samples["min_available_kib"], avail)
                time.sleep(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout, stderr = proc.communicate()
        wall = time.perf_counter() - t0
        sampler.join(2)
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        log = json.loads((tmp / "log.json").read_text()) if (tmp / "log.json").is_file() else {}
    iters = log.get("iterations", [])
    lines = [
        f"# A whole `minivgg transfer` at {args.size}x{args.size}",
        "",
        f"- command: `python -m bench.transfer {shlex.join(sys.argv[1:] if argv is None else argv)}`, "
        f"which runs `{shown}` in a fresh process",
        f"- date: {environment.now()}",
        "- machine: " + "; ".join(f"{k} {v}" for k, v in environment.machine_report().items()),
        "- versions: "
        + "; ".join(f"{k} {v}" for k, v in environment.versions(torch_too=False).items()),
        f"- exit status: {proc.returncode}"
        + ("" if proc.returncode == 0 else f" — {stderr.strip()[-300:]}"),
        f"- wall time: {wall:.0f} s (weights loading, targets, {len(iters)} L-BFGS iterations, writing the image)",
        f"- **peak RSS: {peak_kib / 2**20:.2f} GiB** (`ru_maxrss` of the child; sampled VmRSS peak "
        f"{samples['rss_kib'] / 2**20:.2f} GiB), machine memory {environment.machine_report().get('memory', '?')}",
        "- lowest MemAvailable during the run: "
        + (
            f"{samples['min_available_kib'] / 2**20:.2f} GiB"
            if samples["min_available_kib"]
            else "unknown"
        ),
        f"- optimizer: L-BFGS ({'in-house projected L-BFGS: above 2^23 variables scipy would build a Python list of bounds' if 3 * args.size**2 > (1 << 23) else 'scipy L-BFGS-B'})",
        "",
        "| iteration | loss | content | style | tv | seconds since start |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for it in iters:
        lines.append(
            f"| {it['iteration']} | {it['loss']:.4g} | {it['content']:.4g} | {it['style']:.4g} | "
            f"{it['tv']:.4g} | {it['seconds']:.0f} |"
        )
    if log.get("final_loss") is not None:
        lines += [
            "",
            f"Final loss {log['final_loss']:.4g}; the run's own time {log.get('seconds', 0):.0f} s.",
        ]
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.with_suffix(".json").write_text(
        json.dumps(
            {
                "size": args.size,
                "iters": args.iters,
                "exit_status": proc.returncode,
                "wall_s": wall,
                "peak_rss_gib": peak_kib / 2**20,
                "sampled_rss_gib": samples["rss_kib"] / 2**20,
                "final_loss": log.get("final_loss"),
                "iterations": iters,
                "date": environment.now(),
                "command": f"python -m bench.transfer --size {args.size} --iters {args.iters}",
            },
            indent=1,
        )
    )
    save_page(out_md, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())

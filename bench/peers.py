"""The peer rows (``python -m bench.compare --peers``): minivgg against PyTorch at its best on a
CPU.

At each size, five workers (``bench.workers``), each its own process, interleaved A B C D E,
E D C B A, …: minivgg as the CLI runs it (minivgg imported first), minivgg in a process that
imported numpy first (what most scripts do), and PyTorch eager NCHW, channels_last and
``torch.compile`` (``torch_objective.CONFIGS``). The first evaluation of each is timed apart
(torch.compile compiles there) and is the agreement check against eager PyTorch. Peak RSS over
``evaluation.PEAK_EVALS`` evaluations comes from a fresh process per configuration
(``evaluation.run_child``). The headline ratio is minivgg's median against the *fastest* PyTorch
configuration at that size. ``peer_page`` renders ``bench/results/peers.md`` from the raw results
(``peers.json``).
"""

from __future__ import annotations

import numpy as np

from .evaluation import PEAK_EVALS, agreement, log, run_child
from .timing import interleaved
from .workers import Worker

MINIVGG = ("minivgg", "minivgg:numpy-first")
TORCH = ("torch", "torch:channels_last", "torch:compile")
ENGINES = MINIVGG + TORCH
LABELS = {
    "minivgg": "minivgg (imported first)",
    "minivgg:numpy-first": "minivgg (numpy imported first)",
    "torch": "PyTorch eager NCHW",
    "torch:channels_last": "PyTorch channels_last",
    "torch:compile": "PyTorch torch.compile",
}


def peer_rows(args, weights_choice: str, repeats: int) -> dict:
    """``{size: {"rows": {engine: {...}}, "fastest_torch", "ratio", "import_ratio"}}`` over
    ``args.sizes``."""
    out = {}
    for size in args.sizes:
        log(f"peers at {size}²: {', '.join(ENGINES)} …")
        workers = {}
        try:
            for eng in ENGINES:
                workers[eng] = Worker(eng, size, args, weights_choice)
            outputs = {eng: w.call("outputs") for eng, w in workers.items()}
            ref = outputs["torch"]
            agree = {
                eng: agreement(o[:2], ref[:2], o[2], ref[2])
                for eng, o in outputs.items()
                if eng != "torch"
            }
            first = {eng: o[3] for eng, o in outputs.items()}
            del outputs, ref
            fns = {eng: (lambda w=w: w.call("eval")) for eng, w in workers.items()}
            times = interleaved(
                fns,
                repeats,
                warmup=max(0, args.warmup - 1),
                cooldown=args.cooldown,
                self_timed=True,
            )
        finally:
            for w in workers.values():
                w.close()
        rows = {}
        for eng in ENGINES:
            memory = (
                {}
                if args.skip_memory
                else run_child(size, eng, args, weights_choice, args.child_timeout)
            )
            rows[eng] = {
                "times": times[eng],
                "median": float(np.median(times[eng])),
                "first_s": first[eng],
                "agreement": agree.get(eng),
                "memory": memory,
            }
            peak = (
                ""
                if not memory or "error" in memory
                else f", peak RSS {memory['process_peak_mib']:.0f} MiB"
            )
            log(
                f"{size}² {eng}: median {rows[eng]['median']:.3f} s, first {first[eng]:.1f} s{peak}"
            )
        fastest = min(TORCH, key=lambda e: rows[e]["median"])
        mine, numpy_first = rows["minivgg"]["median"], rows["minivgg:numpy-first"]["median"]
        out[size] = p = {
            "rows": rows,
            "fastest_torch": fastest,
            "peak_evals": PEAK_EVALS,
            "ratio": mine / rows[fastest]["median"],
            "import_ratio": numpy_first / mine,
            "ratio_paired": paired_ratio(times["minivgg"], times[fastest]),
            "import_ratio_paired": paired_ratio(times["minivgg:numpy-first"], times["minivgg"]),
        }
        log(
            f"{size}²: minivgg / fastest PyTorch ({fastest}) = {p['ratio']:.2f} "
            f"(paired {p['ratio_paired']:.2f}), numpy-first / minivgg-first = "
            f"{p['import_ratio']:.2f} (paired {p['import_ratio_paired']:.2f})"
        )
    return out


def _peak_evals(peers) -> int:
    """Evaluations behind the peak RSS column (runs before ``PEAK_EVALS`` existed measured one)."""
    return max(int(p.get("peak_evals", 1)) for p in peers.values())


def paired_ratio(a, b) -> float:
    """The median over rounds of ``a[k] / b[k]``: each round runs both sides back to back (the interleaved
    order), so a slow stretch of the shared machine hits both terms of one quotient and cancels, where
    it moves a median of each side on its own."""
    return float(np.median(np.asarray(a) / np.asarray(b)))


def _peak(row):
    m = row.get("memory") or {}
    return m.get("process_peak_mib") if "error" not in m else None


TITLE = "# minivgg against PyTorch at its best"


def peer_page(meta: dict, peers: dict) -> str:
    """The page ``bench/results/peers.md``: the run's provenance, one table per size, the headline
    ratios. ``meta`` and ``peers`` are those of the raw results (``peers.json``)."""
    lines = [TITLE, ""]
    if meta:
        lines += [
            f"- command: `{meta['command']}`",
            f"- date: {meta['date']}",
            "- machine: " + "; ".join(f"{k} {v}" for k, v in meta["machine"].items()),
            "- versions: " + "; ".join(f"{k} {v}" for k, v in meta["versions"].items()),
            f"- weights: {meta['weights']}; threads {meta['threads']}",
            f"- load average at the end: {meta['load_end']}",
            "",
        ]
    return "\n".join(lines + peer_table(peers)) + "\n"


def peer_table(peers: dict) -> list[str]:
    """Markdown lines: one table per size, then the headline ratios."""
    if not peers:
        return []
    lines = [
        "Each configuration in its own process, interleaved; medians (min–max) of the "
        "timed evaluations; *first* is the first evaluation (torch.compile compiles there), "
        f"not in the median; peak RSS over {_peak_evals(peers)} evaluation(s) in a fresh "
        "process. Ratio = minivgg (imported first) / that row.",
        "",
    ]
    for size, p in sorted(((int(k), v) for k, v in peers.items())):
        rows = p["rows"]
        base = rows["minivgg"]
        lines += [
            f"## {size}²",
            "",
            "| engine | s / evaluation | first | ratio | peak RSS | agreement with eager |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for eng in ENGINES:
            r = rows[eng]
            peak = _peak(r)
            ratio = base["median"] / r["median"]
            a = r.get("agreement")
            agree = (
                "reference"
                if eng == "torch"
                else (
                    f"{a['verdict']} (loss {a['loss_rel']:.0e}, grad {a['grad_rel_l2']:.0e})"
                    if a
                    else ""
                )
            )
            bold = "**" if eng == p["fastest_torch"] else ""
            spread = f"{min(r['times']):.3f}–{max(r['times']):.3f}"
            lines.append(
                f"| {bold}{LABELS[eng]}{bold} | {r['median']:.3f} ({spread}) "
                f"| {r['first_s']:.1f} s | {ratio:.2f}× | "
                f"{'' if peak is None else f'{peak / 1024:.2f} GiB'} | {agree} |"
            )
        paired = (
            f" (median of the per-round ratios: {p['ratio_paired']:.2f}× and "
            f"{p['import_ratio_paired']:.2f}×)"
            if "ratio_paired" in p
            else ""
        )
        lines += [
            "",
            f"minivgg / fastest PyTorch ({LABELS[p['fastest_torch']]}): "
            f"**{p['ratio']:.2f}×**; numpy imported first / minivgg imported first: "
            f"**{p['import_ratio']:.2f}×**{paired}.",
            "",
        ]
    return lines

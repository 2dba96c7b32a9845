"""The peer rows (``python -m bench.compare --peers``): minivgg against PyTorch at its best on a CPU.

At each size, five workers (``bench.workers``), each its own process, interleaved A B C D E, E D C B A, …:
minivgg as the CLI runs it (minivgg imported first), minivgg in a process that imported numpy first
(what most scripts do), and PyTorch eager NCHW, channels_last and ``torch.compile``
(``torch_objective.CONFIGS``). The first evaluation of each is timed apart (torch.compile compiles
there) and is the agreement check against eager PyTorch. Peak RSS over ``compare.PEAK_EVALS``
evaluations comes from a fresh process per configuration (``compare.run_child``). The headline ratio is minivgg's median
against the *fastest* PyTorch configuration at that size.
"""
from __future__ import annotations

import numpy as np

MINIVGG = ("minivgg", "minivgg:numpy-first")
TORCH = ("torch", "torch:channels_last", "torch:compile")
ENGINES = MINIVGG + TORCH
LABELS = {"minivgg": "minivgg (imported first)", "minivgg:numpy-first": "minivgg (numpy imported first)",
          "torch": "PyTorch eager NCHW", "torch:channels_last": "PyTorch channels_last",
          "torch:compile": "PyTorch torch.compile"}


def peer_rows(args, weights_choice: str, repeats: int) -> dict:
    """``{size: {"rows": {engine: {...}}, "fastest_torch", "ratio", "import_ratio"}}`` over ``args.sizes``."""
    from . import compare
    from .timing import interleaved
    from .workers import Worker
    out = {}
    for size in args.sizes:
        compare.log(f"peers at {size}²: {', '.join(ENGINES)} …")
        workers = {}
        try:
            for eng in ENGINES:
                workers[eng] = Worker(eng, size, args, weights_choice)
            outputs = {eng: w.call("outputs") for eng, w in workers.items()}
            ref = outputs["torch"]
            agree = {eng: compare.agreement(o[:2], ref[:2], o[2], ref[2]) for eng, o in outputs.items() if eng != "torch"}
            first = {eng: o[3] for eng, o in outputs.items()}
            del outputs, ref
            times = interleaved({eng: (lambda w=w: w.call("eval")) for eng, w in workers.items()}, repeats,
                                warmup=max(0, args.warmup - 1), cooldown=args.cooldown, self_timed=True)
        finally:
            for w in workers.values():
                w.close()
        rows = {}
        for eng in ENGINES:
            memory = {} if args.skip_memory else compare.run_child(size, eng, args, weights_choice, args.child_timeout)
            rows[eng] = {"times": times[eng], "median": float(np.median(times[eng])), "first_s": first[eng],
                         "agreement": agree.get(eng), "memory": memory}
            compare.log(f"{size}² {eng}: median {rows[eng]['median']:.3f} s, first {first[eng]:.1f} s"
                        + ("" if not memory or "error" in memory else f", peak RSS {memory['process_peak_mib']:.0f} MiB"))
        fastest = min(TORCH, key=lambda e: rows[e]["median"])
        out[size] = {"rows": rows, "fastest_torch": fastest, "peak_evals": compare.PEAK_EVALS,
                     "ratio": rows["minivgg"]["median"] / rows[fastest]["median"],
                     "import_ratio": rows["minivgg:numpy-first"]["median"] / rows["minivgg"]["median"],
                     "ratio_paired": paired_ratio(times["minivgg"], times[fastest]),
                     "import_ratio_paired": paired_ratio(times["minivgg:numpy-first"], times["minivgg"])}
        compare.log(f"{size}²: minivgg / fastest PyTorch ({fastest}) = {out[size]['ratio']:.2f} "
                    f"(paired {out[size]['ratio_paired']:.2f}), numpy-first / minivgg-first = "
                    f"{out[size]['import_ratio']:.2f} (paired {out[size]['import_ratio_paired']:.2f})")
    return out


def _peak_evals(peers) -> int:
    """Evaluations behind the peak RSS column (runs before ``compare.PEAK_EVALS`` measured one)."""
    return max(int(p.get("peak_evals", 1)) for p in peers.values())


def paired_ratio(a, b) -> float:
    """The median over rounds of ``a[k] / b[k]``: each round runs both sides back to back (the interleaved
    order), so a slow stretch of the shared machine hits both terms of one quotient and cancels, where
    it moves a median of each side on its own."""
    return float(np.median(np.asarray(a) / np.asarray(b)))


def _peak(row):
    m = row.get("memory") or {}
    return m.get("process_peak_mib") if "error" not in m else None


def peer_table(peers: dict) -> list[str]:
    """Markdown lines: one table per size, then the headline ratios."""
    if not peers:
        return []
    lines = ["## minivgg against PyTorch at its best", "",
             "Each configuration in its own process, interleaved; medians (min–max) of the timed evaluations; "
             "*first* is the first evaluation (torch.compile compiles there), not in the median; peak RSS over "
             f"{_peak_evals(peers)} evaluation(s) in a fresh process. Ratio = minivgg (imported first) / that row.", ""]
    for size, p in sorted(((int(k), v) for k, v in peers.items())):
        rows = p["rows"]
        base = rows["minivgg"]
        lines += [f"### {size}²", "", "| engine | s / evaluation | first | ratio | peak RSS | agreement with eager |",
                  "|---|---:|---:|---:|---:|---|"]
        for eng in ENGINES:
            r = rows[eng]
            peak = _peak(r)
            ratio = base["median"] / r["median"]
            a = r.get("agreement")
            agree = "reference" if eng == "torch" else (
                f"{a['verdict']} (loss {a['loss_rel']:.0e}, grad {a['grad_rel_l2']:.0e})" if a else "")
            bold = "**" if eng == p["fastest_torch"] else ""
            lines.append(f"| {bold}{LABELS[eng]}{bold} | {r['median']:.3f} ({min(r['times']):.3f}–{max(r['times']):.3f}) "
                         f"| {r['first_s']:.1f} s | {ratio:.2f}× | "
                         f"{'' if peak is None else f'{peak / 1024:.2f} GiB'} | {agree} |")
        paired = (f" (median of the per-round ratios: {p['ratio_paired']:.2f}× and {p['import_ratio_paired']:.2f}×)"
                  if "ratio_paired" in p else "")
        lines += ["", f"minivgg / fastest PyTorch ({LABELS[p['fastest_torch']]}): **{p['ratio']:.2f}×**; "
                  f"numpy imported first / minivgg imported first: **{p['import_ratio']:.2f}×**{paired}.", ""]
    return lines

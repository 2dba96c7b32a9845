"""The two-engine page of ``bench.compare`` (``bench/results/compare.md``) and its plot."""

from __future__ import annotations

import numpy as np

ENGINES = ("minivgg", "torch")


def _s(v, digits=3):
    return "—" if v is None else f"{v:.{digits}f}"


def _gib(mib):
    return "—" if mib is None else f"{mib / 1024:.2f}"


def _sci(v):
    return "—" if v is None else f"{v:.1e}"


def scaling_exponent(pixels, values):
    """Least-squares slope of log(value) against log(pixels): ``value ∝ pixels^slope`` (None below 2 points)."""
    pts = [(p, v) for p, v in zip(pixels, values) if v is not None and v > 0]
    if len(pts) < 2:
        return None
    x, y = np.log([p for p, _ in pts]), np.log([v for _, v in pts])
    return float(np.polyfit(x, y, 1)[0])


def scaling_exponents(rows: dict) -> dict:
    """Scaling exponents against pixel count: time from the medians and from the fastest runs (noise
    only adds time), and the evaluation's own memory growth (peak during it minus RSS after setup)."""
    sizes = list(rows)
    pixels = [s * s for s in sizes]
    out = {"time (medians)": {}, "time (fastest runs)": {}, "evaluation memory": {}}
    for eng in ENGINES:
        times = [rows[s]["times"].get(eng) for s in sizes]
        out["time (medians)"][eng] = scaling_exponent(
            pixels, [np.median(t) if t else None for t in times]
        )
        out["time (fastest runs)"][eng] = scaling_exponent(
            pixels, [min(t) if t else None for t in times]
        )
        growth = []
        for s in sizes:
            m = rows[s].get("memory", {}).get(eng)
            peak = memory_of(m, "eval_peak_mib")
            growth.append(None if peak is None else peak - m["rss_after_setup_mib"])
        out["evaluation memory"][eng] = scaling_exponent(pixels, growth)
    return out


def memory_of(mem: dict, key: str):
    """A field of one child's memory result, None when the child failed."""
    return None if mem is None or "error" in mem else mem.get(key)


def targets(
    rows: dict, large: list, exponents: dict, transfer: dict | None = None
) -> list[tuple[str, str, str]]:
    """Issue 5's targets as ``(target, measured, verdict)`` rows; 'not measured' when the run lacks the size.
    ``transfer``: the JSON of ``python -m bench.transfer --size 4096`` (a whole transfer run), if any."""
    out = []
    r512 = rows.get(512)
    if r512 and r512.get("ratio") is not None:
        ratio = r512["ratio"]
        verdict = (
            "met (≤ 0.8, the aim)" if ratio <= 0.8 else "met (≤ 1.0)" if ratio <= 1.0 else "not met"
        )
        out.append(("1. time at 512² ≤ 1.0× torch (aim ≤ 0.8×)", f"{ratio:.2f}×", verdict))
    else:
        out.append(
            ("1. time at 512² ≤ 1.0× torch (aim ≤ 0.8×)", "—", "not measured (add 512 to --sizes)")
        )
    peaks = {
        e: memory_of(rows.get(1024, {}).get("memory", {}).get(e), "process_peak_mib")
        for e in ENGINES
    }
    for m in large:  # a --large-sizes 1024 measurement serves when 1024 is not in --sizes
        if m.get("size") == 1024 and peaks.get(m["engine"]) is None:
            peaks[m["engine"]] = memory_of(m, "process_peak_mib")
    mine, theirs = peaks["minivgg"], peaks["torch"]
    if mine and theirs:
        ratio = mine / theirs
        out.append(
            (
                "2. peak RSS at 1024² ≤ 0.5× torch",
                f"{ratio:.2f}× ({_gib(mine)} vs {_gib(theirs)} GiB)",
                "met" if ratio <= 0.5 else "not met",
            )
        )
    else:
        out.append(("2. peak RSS at 1024² ≤ 0.5× torch", "—", "not measured (add 1024 to --sizes)"))
    big = [m for m in large if m.get("engine") == "minivgg" and m.get("size") == 4096]
    if big:
        m = big[0]
        if "error" in m:
            out.append(("3. one evaluation at 4096² under 20 GB", m["error"], "not met"))
        else:
            peak = m["process_peak_mib"]
            out.append(
                (
                    "3. one evaluation at 4096² under 20 GB",
                    f"{_gib(peak)} GiB, {m['eval_s']:.0f} s",
                    "met" if peak < 20 * 1024 else "not met",
                )
            )
    else:
        out.append(
            ("3. one evaluation at 4096² under 20 GB", "—", "not measured (--large-sizes 4096)")
        )
    if transfer and transfer.get("size") == 4096:
        ok = transfer.get("exit_status") == 0 and transfer["peak_rss_gib"] < 24 * 1e9 / 2**30
        out.append(
            (
                "3. a full `minivgg transfer` at 4096² within 24 GB",
                f"peak RSS {transfer['peak_rss_gib']:.2f} GiB, {transfer['iters']} L-BFGS iterations in "
                f"{transfer['wall_s']:.0f} s, exit {transfer['exit_status']} (`{transfer['command']}`, "
                f"{transfer.get('date', '')}: `bench/results/transfer_4096.md`)",
                "met" if ok else "not met",
            )
        )
    else:
        out.append(
            (
                "3. a full `minivgg transfer` at 4096² within 24 GB",
                "—",
                "not measured (`python -m bench.transfer --size 4096`)",
            )
        )
    e = exponents["time (medians)"].get("minivgg")
    fastest = exponents["time (fastest runs)"].get("minivgg")
    r = rows.get(512)
    big_ok = [m for m in big if "error" not in m]
    span = ""
    if r and big_ok:  # the widest span: 512² (timed) to 4096² (one evaluation)
        t512 = float(np.median(r["times"]["minivgg"]))
        span = f"; 512²→4096²: {np.log(big_ok[0]['eval_s'] / t512) / np.log(64):.2f}"
    if e is None:
        out.append(("4. time ∝ pixels (exponent ≈ 1)", "—", "not measured (needs ≥ 2 sizes)"))
    else:
        out.append(
            (
                "4. time ∝ pixels (exponent ≈ 1)",
                f"{e:.2f} (fastest runs: {fastest:.2f}{span})",
                "met" if 0.9 <= e <= 1.1 else "not met",
            )
        )
    return out


def conv_table(conv: dict) -> list[str]:
    """The rows per conv algorithm (``bench.compare.conv_rows``): time, ratio to torch, peak RSS, agreement."""
    size, rows = conv["size"], conv["rows"]
    torch_t = np.median(rows["torch"]["times"])
    torch_m = memory_of(rows["torch"].get("memory"), "process_peak_mib")
    L = [
        "",
        f"## Conv algorithms ({size}², one run, interleaved)",
        "",
        "| engine | s per evaluation, median (min–max) | ratio to torch | peak RSS GiB | RSS ratio | agreement with torch |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for eng, r in rows.items():
        t, m = r["times"], memory_of(r.get("memory"), "process_peak_mib")
        a = r.get("agreement")
        L.append(
            f"| {eng} | {np.median(t):.3f} ({min(t):.2f}–{max(t):.2f}) | {np.median(t) / torch_t:.2f}× | {_gib(m)} | "
            + (f"{m / torch_m:.2f}×" if m and torch_m else "—")
            + " | "
            + (
                f"{a['verdict']} (loss {_sci(a['loss_rel'])}, grad L2 {_sci(a['grad_rel_l2'])})"
                if a
                else "—"
            )
            + " |"
        )
    L += [
        "",
        "`minivgg:im2col` runs every conv as banded im2col + GEMM (the textbook algorithm), `minivgg:winograd` "
        "as Winograd (F(4x4,3x3) on the CPU: 4x fewer multiplications); `minivgg:auto`, the default, is Winograd for every "
        "3x3 conv, so on VGG it equals `winograd`.",
    ]
    return L


def markdown(
    meta: dict,
    rows: dict,
    large: list,
    ops_rows: list,
    breakdown: dict,
    exponents: dict,
    transfer: dict | None = None,
    conv: dict | None = None,
    plot_name: str = "compare.png",
) -> str:
    """The full results page: provenance, the main table, agreement, memory, scaling, targets, ops."""
    L = ["# minivgg vs PyTorch: one objective evaluation (`gatys`, CPU)", ""]
    if meta.get("note"):
        L += [f"> **{meta['note']}**", ""]
    L += [f"- command: `{meta['command']}`", f"- date: {meta['date']}"]
    for k, v in meta["machine"].items():
        L.append(f"- {k}: {v}")
    L.append(f"- load average at the end: {meta.get('load_end', '—')}")
    for k, v in meta["versions"].items():
        L.append(f"- {k}: {v}")
    L.append(f"- weights: {meta['weights']}")
    reports = meta["thread_report"]
    if not all(
        isinstance(v, dict) for v in reports.values()
    ):  # results from before the worker processes
        reports = {"both": reports}
    pools = "; ".join(
        f"{eng}: " + ", ".join(f"{k}: {v}" for k, v in rep.items()) for eng, rep in reports.items()
    )
    L.append(f"- threads: {meta['threads']} on both sides — {pools}")
    for line in meta["blas"]:
        L.append(f"- BLAS {line}")
    for line in meta["torch_backend"]:
        L.append(f"- torch: {line}")
    env = meta["env"]
    L.append(
        "- BLAS/OpenMP environment: "
        + (
            ", ".join(f"`{k}={v}`" for k, v in env.items())
            if env
            else "none of OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE, OMP_*, MKL_*, "
            "NUMBA_NUM_THREADS set (library defaults)"
        )
    )
    if meta.get("minivgg_thread_defaults"):
        L.append(
            "- minivgg's own thread defaults, set by `import minivgg` in its process only: "
            + ", ".join(f"`{k}={v}`" for k, v in meta["minivgg_thread_defaults"].items())
            + " (idle OpenBLAS and OpenMP threads sleep instead of spinning; torch keeps its library defaults)"
        )
    L.append(
        f"- method: images {meta['images']}, resized to size×size (Pillow LANCZOS); x = content + "
        f"uniform(±{meta['noise']}) noise (seed {meta['seed']}); {meta['warmup']} warm-up evaluation(s) per side "
        f"excluded; {meta['repeats']} timed evaluations per side, interleaved (A B, B A, …), "
        + (
            "each engine in a spawned worker process of its own, timed inside it, "
            if meta.get("workers")
            else ""
        )
        + "each after gc and a "
        f"{meta['cooldown']:g} s pause outside the timer; median; "
        "peak RSS over the evaluations of a fresh process per engine and size "
        "(`evaluation.PEAK_EVALS`)."
    )
    L += [
        "",
        "## Time and memory per evaluation",
        "",
        "| size | minivgg s (min–max) | torch s (min–max) | ratio minivgg/torch (medians) | ratio of minima | "
        "minivgg peak RSS GiB | torch peak RSS GiB | RSS ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, r in rows.items():
        cells = [f"{size}²"]
        for eng in ENGINES:
            t = r["times"].get(eng)
            cells.append(f"{np.median(t):.3f} ({min(t):.2f}–{max(t):.2f})" if t else "—")
        cells.append(_s(r.get("ratio"), 2) + ("×" if r.get("ratio") is not None else ""))
        mins = [min(r["times"][e]) if r["times"].get(e) else None for e in ENGINES]
        cells.append(f"{mins[0] / mins[1]:.2f}×" if all(mins) else "—")
        mem = r.get("memory", {})
        peaks = [memory_of(mem.get(e), "process_peak_mib") for e in ENGINES]
        cells += [_gib(p) for p in peaks]
        cells.append(f"{peaks[0] / peaks[1]:.2f}×" if all(peaks) else "—")
        L.append("| " + " | ".join(cells) + " |")
    L += [
        "",
        "The ratio of medians is the headline; on a shared machine noise only ever adds time, so the ratio "
        "of the fastest evaluations is shown beside it.",
        "",
        "Peak RSS is the whole process (interpreter, libraries, weights, targets, the evaluation): the "
        "maximum of VmHWM over setup and over the one evaluation, in a fresh `python -m bench.compare "
        "--size-only` process per engine and size (the torch process does not import minivgg's engine "
        "beyond its settings table, and the minivgg process never imports torch).",
    ]
    L += [
        "",
        "### Memory detail (MiB)",
        "",
        "| size | engine | RSS after setup | setup peak | peak during the evaluation | eval − after setup "
        "| cold eval s |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for size, r in rows.items():
        for eng in ENGINES:
            m = r.get("memory", {}).get(eng)
            if m is None:
                continue
            if "error" in m:
                L.append(f"| {size}² | {eng} | {m['error']} | | | | |")
                continue
            L.append(
                f"| {size}² | {eng} | {m['rss_after_setup_mib']:.0f} | {m['setup_peak_mib']:.0f} | "
                f"{m['eval_peak_mib']:.0f} | {m['eval_peak_mib'] - m['rss_after_setup_mib']:.0f} | "
                f"{m['eval_s']:.2f} |"
            )
    if large:
        L += [
            "",
            "### Large sizes (one evaluation in a fresh process)",
            "",
            "| size | engine | eval s | peak RSS GiB | RSS after setup GiB | setup s |",
            "|---:|---|---:|---:|---:|---:|",
        ]
        for m in large:
            if "error" in m:
                L.append(f"| {m['size']}² | {m['engine']} | {m['error']} | | | |")
            else:
                L.append(
                    f"| {m['size']}² | {m['engine']} | {m['eval_s']:.1f} | {_gib(m['process_peak_mib'])} | "
                    f"{_gib(m['rss_after_setup_mib'])} | {m['setup_s']:.1f} |"
                )
    L += [
        "",
        "## Agreement (same x, same weights)",
        "",
        "| size | loss minivgg | loss torch | rel. diff loss | rel. diff content / style / tv | rel. L2 diff grad | "
        "max abs diff / max abs grad | pixels differing | cosine | verdict |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    ref_lines = []
    for size, r in rows.items():
        a = r.get("agreement")
        if not a:
            continue
        terms = " / ".join(_sci(a["terms"].get(k)) for k in ("content", "style", "tv"))
        L.append(
            f"| {size}² | {a['loss_minivgg']:.7e} | {a['loss_torch']:.7e} | {_sci(a['loss_rel'])} | {terms} | "
            f"{_sci(a['grad_rel_l2'])} | {_sci(a['grad_rel_max'])} | {100 * a['pixels_differing']:.3f}% | "
            f"{a['cosine']:.8f} | {a['verdict']} |"
        )
        if "vs_float64" in a:
            ref_lines.append(
                f"| {size}² | "
                + " | ".join(
                    f"{_sci(lr)} | {_sci(gr)}" for lr, gr in (a["vs_float64"][e] for e in ENGINES)
                )
                + " |"
            )
    L += [
        "",
        f"Verdict 'agree' needs relative loss difference ≤ {meta['tol_loss']:g}, relative L2 gradient "
        f"difference ≤ {meta['tol_grad']:g} and at most {100 * meta['tol_pixels']:g}% of pixels whose gradient "
        "differs by more than "
        f"{meta['local_diff']:g}× the largest gradient. Float32 rounding is far below the first two; a ReLU whose "
        "pre-activation is within rounding of 0 can flip on one side only and move one receptive-field-sized patch "
        "(a few hundred pixels), which the third allows; a wrong formula or a border bug moves far more.",
    ]
    if ref_lines:
        L += [
            "",
            "Distance of each float32 side to minivgg run in float64 (same weights, same x):",
            "",
            "| size | minivgg loss | minivgg grad L2 | torch loss | torch grad L2 |",
            "|---:|---:|---:|---:|---:|",
        ] + ref_lines
    L += ["", "## Scaling with pixel count", ""]
    for what, per in exponents.items():
        L.append(f"- {what}: " + ", ".join(f"{eng} ∝ pixels^{_s(e, 2)}" for eng, e in per.items()))
    L += [
        "",
        "Least-squares slope of log(value) on log(H·W) over the sizes above (memory: the evaluation's "
        "own growth, peak during the evaluation minus RSS after setup).",
    ]
    L += ["", "## Targets of issue 5", "", "| target | measured | verdict |", "|---|---|---|"]
    for t, m, v in targets(rows, large, exponents, transfer):
        L.append(f"| {t} | {m} | {v} |")
    if conv:
        L += conv_table(conv)
    if ops_rows:
        nhwc = any("torch:channels_last" in o for o in ops_rows)
        L += [
            "",
            "## Per-op timings (median ms, float32, batch 1, C→C 3x3 conv)",
            "",
            "| shape | op | minivgg ms | torch ms | ratio | "
            + ("torch channels_last ms | ratio | " if nhwc else "")
            + "minivgg GFLOP/s | torch GFLOP/s |",
            "|---|---|---:|---:|---:|" + ("---:|---:|" if nhwc else "") + "---:|---:|",
        ]
        for o in ops_rows:
            ms = lambda v: "—" if v is None else f"{v * 1e3:.2f}"
            mine = ms(o["minivgg"]) if not o["error"] else f"error: {o['error'][:60]}"
            cl = (
                f"{ms(o.get('torch:channels_last'))} | {_s(o.get('ratio_channels_last'), 2)} | "
                if nhwc
                else ""
            )
            L.append(
                f"| {o['shape']} | {o['op']} | {mine} | {ms(o['torch'])} | {_s(o['ratio'], 2)} | {cl}"
                f"{_s(o['gflops_minivgg'], 1)} | {_s(o['gflops_torch'], 1)} |"
            )
    if breakdown:
        L += ["", f"## Where one evaluation's time goes ({breakdown['size']}²)", ""]
        labels = (
            ("minivgg", "minivgg (timers around `minivgg.ops`)"),
            ("torch", "torch (torch.profiler self CPU time)"),
        )
        for eng, label in labels:
            total, parts = breakdown[eng]
            L += [
                f"**{label}**, total {total:.3f} s",
                "",
                "| part | s | share | calls |",
                "|---|---:|---:|---:|",
            ]
            for name, (sec, calls) in parts.items():
                L.append(f"| {name} | {sec:.3f} | {100 * sec / total:.0f}% | {calls or ''} |")
            L.append("")
    L += ["", f"![time and peak memory against image size]({plot_name})", ""]
    return "\n".join(L)


def plot(rows: dict, large: list, exponents: dict, path) -> None:
    """Time and peak RSS against image size, both engines, log-log; a small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=90)
    style = {
        "minivgg": dict(color="tab:blue", marker="o"),
        "torch": dict(color="tab:orange", marker="s"),
    }
    for eng in ENGINES:
        sizes = [s for s, r in rows.items() if r["times"].get(eng)]
        if sizes:
            e = exponents["time (medians)"].get(eng)
            ax_t.plot(
                sizes,
                [np.median(rows[s]["times"][eng]) for s in sizes],
                label=f"{eng} median" + (f" (∝ px^{e:.2f})" if e is not None else ""),
                **style[eng],
            )
            ax_t.plot(
                sizes,
                [min(rows[s]["times"][eng]) for s in sizes],
                label=f"{eng} fastest",
                ls="--",
                alpha=0.6,
                **style[eng],
            )
        pts = [
            (s, memory_of(r.get("memory", {}).get(eng), "process_peak_mib"))
            for s, r in rows.items()
        ]
        pts += [(m["size"], m.get("process_peak_mib")) for m in large if m.get("engine") == eng]
        pts = sorted((s, p / 1024) for s, p in pts if p)
        if pts:
            ax_m.plot([s for s, _ in pts], [p for _, p in pts], label=eng, **style[eng])
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for ax, title, unit in (
        (ax_t, "time per evaluation", "seconds"),
        (ax_m, "peak RSS (one evaluation)", "GiB"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        sides = sorted({int(x) for line in ax.lines for x in line.get_xdata()})
        ax.set_xticks(sides)
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xlabel("image side (pixels)")
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

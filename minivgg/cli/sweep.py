"""``minivgg sweep`` and ``minivgg batch``: the parsers, and the glue from a grid or a CSV file to the
jobs of ``minivgg.tools.sweep.run_jobs``.

Every setting of a job is one of ``minivgg transfer``'s flags (its name with ``_`` for ``-``), read
by transfer's own parser and turned into ``RunOptions`` by transfer's ``options_from_args``: what
argparse checks (numbers, choices) is checked for every job before any job runs, and a bad value is
the command's error; what ``transfer`` checks when it runs (files, layers, ranges) fails that job only.
"""

from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path

from ..errors import UserError
from ..run.fsutil import output_folder
from ..run.image import SAVE_FORMATS
from ..run.transfer import INITS
from ..tools.cluster import check_address
from ..tools.sweep import (
    SUMMARY_NAMES,
    Job,
    check_name,
    grid_name,
    grid_points,
    parse_grid,
    read_batch,
    run_jobs,
    slug,
)
from .transfer import add_objective_arguments, add_run_arguments, options_from_args

# Settings whose flag takes a comma-separated list: in a value, ``+`` separates the items.
LIST_SETTINGS = {
    "content_layers",
    "style_layers",
    "style_layer_weights",
    "style_blend_weights",
    "content_masks",
    "style_masks",
    "iters",
    "scales",
}
_PATH_SETTINGS = {"weights", "init", "content_masks", "style_masks"}
_NO, _YES = {"no", "false", "off", "0", "none"}, {"yes", "true", "on", "1"}
_BATCH_COLUMNS = ("content", "style", "styles", "output", "name")


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message):  # a job's bad value: the caller says which job
        raise UserError(message)


@functools.lru_cache(maxsize=1)
def _settings():
    """transfer's objective and run flags: ``(parser, {setting name: action})``."""
    parser = _RaisingParser(prog="minivgg transfer", add_help=False)
    add_objective_arguments(parser)
    add_run_arguments(parser)
    return parser, {a.dest: a for a in parser._actions if a.option_strings}


def _action(key: str, where: str):
    actions = _settings()[1]
    if key not in actions:
        raise UserError(
            f"{where}: unknown setting {key!r}; the settings are transfer's flags: {', '.join(actions)}"
        )
    return actions[key]


def _absolute(key: str, text: str, base: Path) -> str:
    """Path-valued settings relative to ``base`` made absolute (a remote worker has another cwd)."""
    if key == "init" and text in INITS:
        return text
    parts = text.split(",") if key in LIST_SETTINGS else [text]
    return ",".join(
        os.path.normpath(base / os.path.expanduser(p.strip())) if p.strip() else p for p in parts
    )


def apply_settings(args, cells: dict, where: str, base: Path):
    """``args`` with a job's settings (``{setting: text}``) applied through transfer's flags: a switch
    takes yes/no, ``match_color_histogram`` also off or a mode, list settings take ``+`` between items."""
    parser, _ = _settings()
    tokens = []
    updates: dict[str, object] = {}  # dest -> value, for switches and optional values
    for key, text in cells.items():
        action = _action(key, where)
        flag, low = action.option_strings[-1], text.lower()
        if action.nargs == 0:
            if low not in _YES | _NO:
                raise UserError(f"{where}: {key} is a switch; give yes or no, got {text!r}")
            updates[action.dest] = low in _YES
        elif action.nargs == "?" and (low in _NO or low in _YES):
            updates[action.dest] = action.const if low in _YES else None
        else:
            text = text.replace("+", ",") if key in LIST_SETTINGS else text
            tokens.append(
                (
                    action.dest,
                    f"{flag}={_absolute(key, text, base) if key in _PATH_SETTINGS else text}",
                )
            )
    try:
        parsed = parser.parse_args([token for _, token in tokens])
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    updates.update({dest: getattr(parsed, dest) for dest, _ in tokens})
    return argparse.Namespace(**{**vars(args), **updates})


def _base_args(args):
    """The command line's own transfer flags, with their paths made absolute."""
    cwd = Path.cwd()
    cells = {k: getattr(args, k) for k in _PATH_SETTINGS if getattr(args, k)}
    return argparse.Namespace(
        **{**vars(args), **{k: _absolute(k, v, cwd) for k, v in cells.items()}}
    )


def _fixed(args) -> dict:
    """The transfer flags given on the command line (those not at their defaults), for the summary."""
    return {k: getattr(args, k) for k, a in _settings()[1].items() if getattr(args, k) != a.default}


def _job(args, name, content, styles, outdir: Path, values, where, row=None) -> Job:
    job_args = argparse.Namespace(**{**vars(args), "styles": styles})
    stem = Path(name).stem
    try:
        opts, overrides = options_from_args(
            job_args,
            str(outdir / name),
            quiet=True,
            report=str(outdir / f"{stem}_report.png") if args.report else None,
        )
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    return Job(
        name=stem,
        content=content,
        styles=styles,
        opts=opts,
        overrides=overrides,
        values=values,
        row=row,
    )


def _add_common(p) -> None:
    p.add_argument(
        "-o",
        "--outdir",
        required=True,
        help="output folder: NAME.png and NAME.json per job, the summary and sheet.png (created if missing)",
    )
    add_objective_arguments(p)
    add_run_arguments(p)
    p.add_argument("--report", action="store_true", help="also write NAME_report.png per job")
    p.add_argument(
        "--scheduler",
        metavar="tcp://HOST:8786",
        help="run the jobs on this Dask scheduler (default: a local cluster sized to this machine)",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes of the local cluster (default: as many as cores, jobs and memory allow)",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar, no dashboard line, no lines for jobs that succeeded: the summary line only",
    )


def add_cli(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="one transfer per point of a grid of settings, on Dask; summary and contact sheet",
    )
    p.add_argument("content", help="content image")
    p.add_argument("styles", nargs="+", metavar="style", help="style image(s)")
    p.add_argument(
        "--grid",
        action="append",
        required=True,
        metavar="SETTING=V1,V2,…",
        help="a grid axis: any transfer setting and its values, e.g. style_weight=1e2,1e3 or "
        "content_layers=block4_conv2,block4_conv2+block5_conv2 ('+' joins list items); repeatable",
    )
    _add_common(p)
    p.set_defaults(func=_cmd_sweep)
    p = sub.add_parser(
        "batch", help="one transfer per row of a CSV file, on Dask; summary and contact sheet"
    )
    p.add_argument(
        "jobs",
        metavar="JOBS.csv",
        help="columns content, style (several separated by ';'), optional output, and any transfer "
        "setting; paths relative to the file's folder",
    )
    _add_common(p)
    p.set_defaults(func=_cmd_batch)


def _check_cluster_flags(args) -> None:
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be a whole number >= 1, got {args.workers}")
    if args.workers is not None and args.scheduler:
        raise UserError(
            "--workers sizes the local cluster; a --scheduler cluster has its own workers"
        )
    check_address(args.scheduler)


def _cmd_sweep(args) -> int:
    _check_cluster_flags(args)
    axes = parse_grid(args.grid)
    for key, _ in axes:
        _action(key, f"--grid {key}=…")
    base = _base_args(args)
    content, styles = os.path.abspath(args.content), [os.path.abspath(s) for s in args.styles]
    outdir = Path(args.outdir).absolute()
    points = grid_points(axes)
    jobs = []
    for k, point in enumerate(points):
        where = "--grid " + ", ".join(f"{a}={b}" for a, b in point.items())
        job_args = apply_settings(base, point, where, Path.cwd())
        jobs.append(
            _job(
                job_args,
                grid_name(k, len(points), point) + ".png",
                content,
                styles,
                outdir,
                point,
                where,
            )
        )
    header = {"content": content, "styles": styles, "axes": dict(axes), "fixed": _fixed(args)}
    return _run("sweep", jobs, args, outdir, header, axes)


def _cmd_batch(args) -> int:
    _check_cluster_flags(args)
    columns, rows = read_batch(args.jobs)
    if "styles" in columns and "style" not in columns:
        columns = ["style" if c == "styles" else c for c in columns]
        rows = [
            (line, {("style" if k == "styles" else k): v for k, v in cells.items()})
            for line, cells in rows
        ]
    missing = [c for c in ("content", "style") if c not in columns]
    if missing:
        raise UserError(
            f"batch file '{args.jobs}' has no {' or '.join(missing)} column; "
            f"its columns are {', '.join(columns)}"
        )
    for c in columns:
        if c not in _BATCH_COLUMNS:
            _action(c, f"batch file '{args.jobs}' column {c!r}")
    base, folder = _base_args(args), Path(args.jobs).absolute().parent
    outdir = Path(args.outdir).absolute()
    jobs = []
    seen: dict[str, int] = {}  # output stem -> the line that names it
    for k, (line, cells) in enumerate(rows):
        where = f"{args.jobs} line {line}"
        content = cells["content"]
        styles = [s.strip() for s in cells["style"].split(";") if s.strip()]
        if not content or not styles:
            raise UserError(f"{where}: the {'content' if not content else 'style'} cell is empty")
        name = (
            cells.get("output")
            or cells.get("name")
            or f"{k + 1:03d}_{slug(Path(content).stem)}_{slug(Path(styles[0]).stem)}"
        )
        name = check_name(name, where)
        if Path(name).suffix.lower() not in SAVE_FORMATS:
            name += ".png"
        if Path(name).stem.lower() in seen:
            raise UserError(
                f"{where}: output {name!r} is also the output of line {seen[Path(name).stem.lower()]}"
            )
        seen[Path(name).stem.lower()] = line
        values = {c: v for c, v in cells.items() if v and c not in _BATCH_COLUMNS}
        job_args = apply_settings(base, values, where, folder)
        jobs.append(
            _job(
                job_args,
                name,
                os.path.normpath(folder / content),
                [os.path.normpath(folder / s) for s in styles],
                outdir,
                values,
                where,
                row=line,
            )
        )
    header = {"jobs_file": os.path.abspath(args.jobs), "fixed": _fixed(args)}
    return _run("batch", jobs, args, outdir, header)


def _run(kind, jobs, args, outdir: Path, header, axes=None) -> int:
    """Run the jobs, print one line per job (``--quiet``: only those that did not succeed) and the totals; a failed job makes the exit code 2 (an internal
    error in a job: 1)."""
    with output_folder(outdir):
        summary = run_jobs(
            kind,
            jobs,
            outdir,
            header,
            axes=axes,
            scheduler=args.scheduler,
            workers=args.workers,
            quiet=args.quiet,
        )
    records = summary["jobs"]
    for r in records:
        terms = r.get("terms") or {}
        if r["status"] != "ok":
            print(f"{r['name']}: {r['status']} ({r['message']})")
            continue
        if args.quiet:  # --quiet: the summary and the jobs that did not succeed only
            continue
        how = f"loss {terms['total']:.6g}" if terms.get("total") is not None else "no loss recorded"
        how += f", {r['seconds']:.1f} s" if r.get("seconds") is not None else ""
        print(f"{r['name']}: ok{', done before' if r.get('skipped') else ''} ({how})")
    counts = summary["counts"]
    where = f" on {summary['cluster']['description']}" if summary.get("cluster") else ""
    print(
        f"{kind}: {counts['ok']} of {len(records)} jobs ok ({counts['skipped']} done before) in "
        f"{summary['seconds']:.1f} s{where}; wrote {', '.join(summary['sheets'])} and {outdir / SUMMARY_NAMES[kind]}"
    )
    bad = [r for r in records if r["status"] in ("failed", "error")]
    if bad:
        first = bad[0]
        text = (
            f"{len(bad)} of {len(records)} jobs failed ({first['name']}: {first['message']}); the others "
            f"finished; see {outdir / SUMMARY_NAMES[kind]}"
        )
        if any(r["status"] == "error" for r in bad):
            raise RuntimeError(text)
        raise UserError(text)
    return 0

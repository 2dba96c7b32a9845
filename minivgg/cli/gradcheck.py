"""``minivgg gradcheck``: run the engine's gradient checks (``minivgg.tools.checks``) in float64 or float32 and
print verdict, error, tolerance and step per check (the full report under any that fails), or one
JSON document with ``--json``; exit 1 when a check does not pass, 2 when the filter matches none."""

from __future__ import annotations

import json
import math

from ..errors import UserError
from ..tools.checks import DTYPES, all_cases, run_case, run_cases


def add_cli(sub) -> None:
    p = sub.add_parser(
        "gradcheck", help="prove every hand-written gradient against finite differences"
    )
    p.add_argument(
        "-k",
        "--filter",
        default="*",
        help="only checks whose name matches this glob (e.g. 'conv2d*')",
    )
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float64",
        help="run every check end to end in this dtype, with its own tolerances (default float64)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document (every result) instead of the table",
    )
    p.set_defaults(func=run)


def _finite(value):
    """JSON has no inf/NaN: those become null (in nested dicts too)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _record(case, dtype) -> dict:
    res, crash = run_case(case, dtype)
    rec = {"id": case.id, "name": case.name, "shape": case.shape, "dtype": dtype}
    if res is None:
        return {**rec, "verdict": "error", "passed": False, "message": crash}
    rec.update(
        {k: _finite(v) for k, v in res.as_dict().items() if k not in ("name", "shape", "dtype")}
    )
    if not res.passed:
        rec["report"] = res.report()
    return rec


def run(args) -> int:
    cases = all_cases(args.filter, args.dtype)
    if not cases:
        names = sorted({c.name.split(" ")[0] for c in all_cases()})
        raise UserError(
            f"no gradient check matches {args.filter!r}; the checks are named {', '.join(names)} …"
        )
    if args.json:
        records = [_record(c, args.dtype) for c in cases]
        failed = sum(not r["passed"] for r in records)
        print(
            json.dumps(
                {
                    "dtype": args.dtype,
                    "filter": args.filter,
                    "checks": records,
                    "total": len(records),
                    "failed": failed,
                    "all_passed": failed == 0,
                },
                indent=1,
                allow_nan=False,
            )
        )
        return 0 if failed == 0 else 1
    ok = run_cases(cases, dtype=args.dtype)
    print(f"{len(cases)} checks, {'all passed' if ok else 'SOME FAILED'}")
    return 0 if ok else 1

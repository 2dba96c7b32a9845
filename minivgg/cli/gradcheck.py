"""``minivgg gradcheck``: run the engine's gradient checks (``minivgg.checks``) and print the table;
exit 1 when a check fails, 2 when the filter matches none."""
from __future__ import annotations

from ..checks import all_cases, run_cases
from ..errors import UserError


def add_cli(sub) -> None:
    p = sub.add_parser("gradcheck", help="prove every hand-written gradient against finite differences (float64)")
    p.add_argument("-k", "--filter", default="*", help="only checks whose name matches this glob (e.g. 'conv2d*')")
    p.set_defaults(func=run)


def run(args) -> int:
    cases = all_cases(args.filter)
    if not cases:
        names = sorted({c.name.split(" ")[0] for c in all_cases()})
        raise UserError(f"no gradient check matches {args.filter!r}; the checks are named {', '.join(names)} …")
    ok = run_cases(cases)
    print(f"{len(cases)} checks, {'all passed' if ok else 'SOME FAILED'}")
    return 0 if ok else 1

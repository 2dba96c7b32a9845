"""``minivgg gradcheck``: run every gradient check and print the table; exit 1 on any failure."""
from __future__ import annotations

import fnmatch


def add_cli(sub) -> None:
    p = sub.add_parser("gradcheck", help="prove every hand-written gradient against finite differences (float64)")
    p.add_argument("-k", "--filter", default="*", help="only checks whose name matches this glob (e.g. 'conv2d*')")
    p.set_defaults(func=run)


def run(args) -> int:
    from .gradcheck import default_cases, run_cases
    cases = [c for c in default_cases() if fnmatch.fnmatch(c.name, args.filter)]
    ok = run_cases(cases)
    print(f"{len(cases)} checks, {'all passed' if ok else 'SOME FAILED'}")
    return 0 if ok else 1

"""The command line every benchmark shares: ``--size small|full``, ``--json``, ``--repeats``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable


def bench_main(
    name: str, doc: str, sizes: dict, repeats: int, run: Callable[..., dict], show: Callable[[dict], None],
    argv: list[str] | None,
) -> int:
    """Parse the shared flags, run the benchmark, print its figures (or JSON); exit code 0."""
    parser = argparse.ArgumentParser(prog=f"m17 bench {name}", description=doc.splitlines()[0])
    parser.add_argument("--size", choices=sorted(sizes), default="full")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--repeats", type=int, default=repeats)
    args = parser.parse_args(argv)
    res = run(args.size, repeats=args.repeats)
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        print()
    else:
        show(res)
    return 0

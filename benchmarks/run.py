"""Run the benchmarks: every ``benchmarks/bench_*.py`` (or the ones named) through its ``main(argv)``.

Usage: ``python benchmarks/run.py [NAME ...] [-- ARGS passed to each main]``, e.g.
``python benchmarks/run.py kernels -- --quick``. ``make bench`` runs them all.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names, rest = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    found = discover()
    unknown = [n for n in names if n not in found]
    if unknown:
        print(f"run.py: unknown benchmark(s) {unknown}; available: {sorted(found)}", file=sys.stderr)
        return 2
    for name in names or list(found):
        spec = importlib.util.spec_from_file_location(f"bench_{name}", found[name])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"\n## benchmark: {name}\n", flush=True)
        start = time.perf_counter()
        module.main(rest)
        print(f"\n({name}: {time.perf_counter() - start:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

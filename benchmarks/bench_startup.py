"""Start-up benchmark (issue 17, item 8): wall-clock seconds of `sparsentk --help`, `sparsentk train --help` and
`import sparsentk`, each in a fresh interpreter (median of several runs), and the heavy modules each one loads.

Target: `sparsentk --help` under 1 s on 2 cores.

``python benchmarks/run.py startup [-- --quick]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, table

HEAVY = ("sklearn", "scipy.stats", "scipy.linalg", "matplotlib", "torch", "numba")

CASES = {
    "sparsentk --help": "from sparsentk.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n",
    "sparsentk train --help": "from sparsentk.cli import main\ntry:\n    main(['train', '--help'])\n"
                              "except SystemExit:\n    pass\n",
    "import sparsentk": "import sparsentk\n",
    "import sparsentk; snt.train": "import sparsentk as snt\nsnt.train\n",
}

TARGET = 1.0  # seconds, for `sparsentk --help`


def run_once(code: str) -> tuple[float, list[str]]:
    """Seconds of a fresh interpreter running ``code``, and the heavy modules it imported."""
    probe = code + f"\nimport sys\nprint('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    line = [row for row in out.stdout.splitlines() if row.startswith("HEAVY:")][-1]
    return seconds, [m for m in line.removeprefix("HEAVY:").split(",") if m]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one run per case (a smoke test, not a timing)")
    parser.add_argument("--repeats", type=int, default=7, help="runs per case (median reported)")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    header("start-up time (fresh interpreter per run)")
    python_only = statistics.median(run_once("pass")[0] for _ in range(repeats))
    rows = [["python -c pass", f"{python_only:.3f}", "", ""]]
    for name, code in CASES.items():
        runs = [run_once(code) for _ in range(repeats)]
        seconds = statistics.median(r[0] for r in runs)
        verdict = ("meets" if seconds < TARGET else "misses") + f" the {TARGET:g} s target" if name == \
            "sparsentk --help" else ""
        rows.append([name, f"{seconds:.3f}", ", ".join(runs[-1][1]) or "none", verdict])
    table(["command", "median s", "heavy modules loaded", "target"], rows)


if __name__ == "__main__":
    main()

"""`python -m benchmarks [NAME ...]`: run the benchmarks (each in its own process), JSON out.

Each benchmark prints its JSON and writes benchmarks/results/NAME.json. Figures are ratios or
distributions measured in one run against a baseline from the same run: machines are shared.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    names = sys.argv[1:] or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    failed = []
    for name in names:
        print(f"== benchmark {name}", file=sys.stderr, flush=True)
        rc = subprocess.call([sys.executable, "-m", f"benchmarks.bench_{name}"], cwd=HERE.parent)
        if rc:
            failed.append(name)
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

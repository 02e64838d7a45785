"""`python -m benchmarks [--quick] [NAME ...] [-- ARGS]`: run the benchmarks (each in its own
process), JSON out.

Each benchmark prints its JSON and writes benchmarks/results/NAME.json. Figures are ratios or
distributions measured in one run against a baseline from the same run: machines are shared.

- no NAME: every ``bench_*.py`` here; ``--list`` names them with their quick form.
- ``--quick``: each benchmark's short form (:data:`QUICK`, a few minutes in all): a smoke run,
  not figures to quote.
- ``-- ARGS``: passed to every benchmark named, e.g.
  ``make bench BENCH_ARGS="engine -- --soak-minutes 10"`` (the 10-minute soak at the default
  settings, issue 13) or ``make bench BENCH_ARGS="--quick"``.

At the end, one line per benchmark (exit status, seconds) and ``benchmarks/results/run.json``;
a benchmark that fails is named there and makes the exit status 1 (none is skipped).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# each benchmark's short form for --quick ([]: it has none, and runs as it is)
QUICK: dict[str, list[str]] = {
    "backends": ["--quick"],
    "control": ["--quick"],
    "engine": ["--quick", "--sweep-seconds", "5"],
    "fault_soak": ["--minutes", "1", "--period", "10"],
    "hostile_osc": ["--seconds", "3"],
    "listen": ["--seconds", "10"],
    "models": ["--frames", "300"],
    "pitch_trackers": ["--seconds", "0.5"],
    "playability": [],
    "ui": ["--quick"],
}


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main(argv: list[str]) -> int:
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    quick = "--quick" in argv
    if "--list" in argv:
        for name in available():
            print(f"{name}: quick form {' '.join(QUICK.get(name, [])) or '(none: full)'}")
        return 0
    options = [a for a in argv if a.startswith("-")]
    unknown = [a for a in options if a not in ("--quick",)]
    names = [a for a in argv if not a.startswith("-")] or available()
    missing = [n for n in names if n not in available()]
    if unknown or missing:
        print(
            f"python -m benchmarks: unknown {' '.join(unknown + missing)}; "
            f"options --quick, --list, -- ARGS; benchmarks: {', '.join(available())}",
            file=sys.stderr,
        )
        return 2
    runs = []
    for name in names:
        args = [*(QUICK.get(name, []) if quick else []), *extra]
        print(f"== benchmark {name} {' '.join(args)}".rstrip(), file=sys.stderr, flush=True)
        t0 = time.monotonic()
        rc = subprocess.call(
            [sys.executable, "-m", f"benchmarks.bench_{name}", *args], cwd=HERE.parent
        )
        runs.append({"benchmark": name, "args": args, "rc": rc, "seconds": time.monotonic() - t0})
    print("== summary", file=sys.stderr)
    for r in runs:
        state = "ok" if r["rc"] == 0 else f"FAILED (exit {r['rc']})"
        print(f"  {r['benchmark']:<16} {state:<18} {r['seconds']:7.1f} s", file=sys.stderr)
    failed = [r["benchmark"] for r in runs if r["rc"]]
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "run.json").write_text(
        json.dumps({"quick": quick, "extra_args": extra, "runs": runs}, indent=2) + "\n"
    )
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

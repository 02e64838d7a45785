"""Fine-tune from the running instrument: dataset → train → versioned export → map, as a job.

    python -m instrument.training DATASET --name NAME --minutes M [--parent MODEL.ts]
        [--threads 2] [--user-dir models/user] [--map umap|pca|none]

This runs in a process of its own, started by the control side on ``/sillage/train``; never in
the decode process. Each step is a child process at low CPU priority (``nice 10``, below the engine),
so the performance keeps its cores: ``python -m models.train --finetune PARENT
--max-minutes M``, ``python -m models.export``, ``python -m ui.map build``. Progress goes to
stdout as one JSON object per line, which the control side relays as ``/sillage/state/train``::

    {"phase": "train", "step": 120, "loss": 1.52, "minutes_left": 2.4}
    {"phase": "export"} · {"phase": "map"}
    {"phase": "done", "model": ".../name-v3.ts", "map": ".../name-v3.map.npz", "seconds": 271.3}
    {"phase": "error", "message": "..."}

Versions are ``USER_DIR/NAME-vN.ts`` with ``N`` one more than any existing version of that
name: no version is ever overwritten. The card beside each one (``NAME-vN.toml``) gains a
``[lineage]`` table: parent model, dataset and its manifest size, and the exact commands.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from instrument.errors import SillageError
from instrument.paths import DEFAULT_MODEL, ROOT

DEFAULT_PARENT = DEFAULT_MODEL
DEFAULT_USER_DIR = ROOT / "models" / "user"
RUNS = ROOT / "runs" / "user"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
VERSION = re.compile(r"-v(\d+)\.ts$")
MAP_MAX_POINTS = 5000  # enough to play from; keeps the fit well under a minute
# Below the engine (its decode process runs at -10) and normal programs, yet not starved by a
# busy desktop: at 19 a fine-tune beside five busy processes got under 1 % of a core.
NICE = 10


class TrainingError(SillageError, ValueError):
    """A request the job cannot carry out; the message names the fix."""


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def next_version(user_dir: Path, name: str) -> int:
    """One more than the highest ``NAME-vN.ts`` in ``user_dir`` (1 when there is none)."""
    found = [int(m.group(1)) for p in user_dir.glob(f"{name}-v*.ts")
             if (m := VERSION.search(p.name)) and p.name == f"{name}-v{m.group(1)}.ts"]  # fmt: skip
    return max(found, default=0) + 1


def versions(user_dir: Path, name: str | None = None) -> list[Path]:
    """Every exported version (of ``name``, or of all names), oldest version first."""
    paths = [p for p in user_dir.glob("*-v*.ts") if VERSION.search(p.name)]
    if name is not None:
        paths = [p for p in paths if p.name.rsplit("-v", 1)[0] == name]
    return sorted(paths, key=_version_key)


def _version_key(path: Path) -> tuple[str, int]:
    name, _, rest = path.name.rpartition("-v")
    return name, int(rest.removesuffix(".ts"))


def check_request(dataset: Path, name: str, minutes: float, parent: Path) -> None:
    """Refuse, with the fix, what would fail later: before any CPU is spent."""
    if not NAME.fullmatch(name):
        raise TrainingError(
            f"model name {name!r}: use 1-64 letters, digits, '-' or '_', starting with a letter or digit"
        )
    if not (0 < minutes <= 24 * 60):
        raise TrainingError(f"minutes must be between 0 and 1440, got {minutes}")
    if not parent.is_file():
        raise TrainingError(f"parent model {str(parent)!r} not found")
    from models.data import find_audio
    from models.errors import ModelsError

    try:
        find_audio(dataset)
    except ModelsError as e:
        raise TrainingError(f"dataset: {e} (build one with python -m models.dataset)") from e


def _run(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    low = ["nice", "-n", str(NICE)] if os.name == "posix" else []
    with open(log, "ab") as fh:
        return subprocess.Popen([*low, *cmd], cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)


def _tail_error(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return " / ".join(lines[-2:]) if lines else "no output"


def _last_loss(run_dir: Path) -> dict[str, Any] | None:
    log = run_dir / "log.jsonl"
    if not log.is_file():
        return None
    last = None
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            last = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written
    return last


def train_job(dataset: Path, *, name: str, minutes: float, parent: Path = DEFAULT_PARENT,
              threads: int = 2, user_dir: Path = DEFAULT_USER_DIR, map_method: str = "umap",
              runs: Path = RUNS, poll_s: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """Run the whole job; returns what the ``done`` line says. Raises TrainingError."""
    started = time.monotonic()
    dataset, parent, user_dir = dataset.resolve(), parent.resolve(), user_dir.resolve()
    check_request(dataset, name, minutes, parent)
    user_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(user_dir, name)
    out = user_dir / f"{name}-v{version}.ts"
    run_dir = (runs / f"{name}-v{version}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "job.log"
    py = sys.executable
    train = [py, "-m", "models.train", str(dataset), "--out", str(run_dir), "--finetune",
             str(parent), "--max-minutes", str(minutes), "--steps", "1000000",
             "--threads", str(threads), "--no-progress"]  # fmt: skip
    emit(phase="train", step=0, loss=None, minutes_left=round(minutes, 2), model=out.name)
    proc = _run(train, log)
    t0 = time.monotonic()
    shown = None
    while proc.poll() is None:
        time.sleep(poll_s)
        last = _last_loss(run_dir)
        left = max(0.0, minutes - (time.monotonic() - t0) / 60)
        if last is not None and last.get("step") != shown:
            shown = last.get("step")
            emit(phase="train", step=last.get("step"), loss=last.get("loss", last.get("mss")),
                 minutes_left=round(left, 2))  # fmt: skip
    if proc.returncode != 0:
        raise TrainingError(f"training failed (exit {proc.returncode}): {_tail_error(log)}")
    emit(phase="export")
    staging = run_dir / "export.ts"
    export = [py, "-m", "models.export", str(run_dir), "--out", str(staging), "--streaming"]
    if _run(export, log).wait() != 0 or not staging.is_file():
        raise TrainingError(f"export failed: {_tail_error(log)}")
    card = staging.with_suffix(".toml")
    if card.is_file():
        text = card.read_text(encoding="utf-8")
        lineage = {
            "parent": str(parent),
            "dataset": str(dataset),
            "dataset_manifest_rows": _manifest_rows(dataset),
            "train": "python " + shlex.join(train[1:]),
            "export": "python " + shlex.join(export[1:]).replace(str(staging), str(out)),
        }
        text += "\n[lineage]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in lineage.items())
        card.write_text(text, encoding="utf-8")
    # Publish without overwriting: link fails if another job took this version meanwhile.
    try:
        os.link(staging, out)
    except FileExistsError as e:
        raise TrainingError(f"{out.name} appeared while training; nothing was overwritten") from e
    if card.is_file():
        os.link(card, out.with_suffix(".toml"))
    map_path: Path | None = None
    if map_method != "none":
        emit(phase="map")
        map_path = out.with_suffix(".map.npz")
        build = [py, "-m", "ui.map", "build", "--model", str(out), str(dataset), "--out",
                 str(map_path), "--method", map_method, "--max-points", str(MAP_MAX_POINTS)]  # fmt: skip
        if _run(build, log).wait() != 0 or not map_path.is_file():
            # The model is good without its map: say so and keep it.
            emit(phase="warning", message=f"map build failed: {_tail_error(log)}")
            map_path = None
    done = {"model": str(out), "map": str(map_path) if map_path else None,
            "version": version, "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
    emit(phase="done", **done)
    return done


def _manifest_rows(dataset: Path) -> int | None:
    manifest = dataset / "manifest.jsonl"
    if not manifest.is_file():
        return None
    return sum(1 for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m instrument.training",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("dataset", type=Path, help="training folder (python -m models.dataset)")
    p.add_argument("--name", required=True, help="model name: versions are NAME-vN.ts")
    p.add_argument("--minutes", type=float, required=True, help="training wall time")
    p.add_argument("--parent", type=Path, default=DEFAULT_PARENT, help="model to fine-tune")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--user-dir", type=Path, default=DEFAULT_USER_DIR)
    p.add_argument("--map", choices=("umap", "pca", "none"), default="umap")
    p.add_argument("--runs", type=Path, default=RUNS, help="where run folders go")
    args = p.parse_args(argv)
    try:
        train_job(args.dataset, name=args.name, minutes=args.minutes, parent=args.parent,
                  threads=args.threads, user_dir=args.user_dir, map_method=args.map,
                  runs=args.runs)  # fmt: skip
    except (TrainingError, OSError) as e:
        emit(phase="error", message=str(e))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

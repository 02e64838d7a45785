"""The artist's loop, from the control side: datasets, fine-tunes, model history, undo, A/B.

Everything here answers ``side`` addresses (protocol.py): it never touches the sound itself.
Heavy work runs in child processes at low priority (``python -m models.dataset``,
``python -m instrument.training``), never in the decode process and never on this process's
GIL for long: a reader thread turns their JSON lines into ``/sillage/state/train`` and
``/sillage/state/dataset``. Changing the model goes through the same door as a performer's
``/sillage/model``: an event down the pipe, loaded off the audio path, crossfaded in.

``/sillage/model/undo`` goes back to the model played before the current one;
``/sillage/ab`` switches between the last two, back and forth. Both reload the model (the
decode side keeps one model warm), so each switch takes the model's warm-up (about 0.2–0.4 s
for the default model) before the crossfade.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from instrument.link.events import Event
from instrument.paths import ROOT

Broadcast = Callable[[str, tuple[Any, ...]], None]


class ArtistLoop:
    """Side handlers for the artist's loop.

    Parameters
    ----------
    put : callable
        Puts an engine event (``/sillage/model``) on the way to the decode process.
    broadcast : callable
        Sends a state message to every subscriber.
    report : callable
        Reports an error line (printed and sent as ``/sillage/state/error``).
    record_dir, dataset_dir, user_dir : Path
        Where recordings are, where datasets are written, where fine-tuned versions go.
    map_for : callable
        The map file for a model path (None when it has none).
    regions : callable
        The regions drawn so far (relayed by the state sender), name → (x0, y0, x1, y1).
    map_method : str
        The map a new version gets: ``umap`` (about a minute), ``pca`` (seconds) or ``none``.
    """

    HANDLED = (
        "/sillage/dataset",
        "/sillage/dataset/region",
        "/sillage/train",
        "/sillage/train/stop",
        "/sillage/model/history",
        "/sillage/model/undo",
        "/sillage/ab",
    )

    def __init__(
        self,
        put: Callable[[Event], None],
        broadcast: Broadcast,
        report: Callable[[str], None],
        *,
        record_dir: Path,
        dataset_dir: Path,
        user_dir: Path,
        map_for: Callable[[str], str | None],
        regions: Callable[[], dict[str, tuple[float, float, float, float]]],
        map_method: str = "umap",
    ) -> None:
        self.put = put
        self.broadcast = broadcast
        self.report = report
        self.record_dir = record_dir
        self.dataset_dir = dataset_dir
        self.user_dir = user_dir
        self.map_for = map_for
        self.regions = regions
        self.map_method = map_method
        self.history: list[str] = []  # model paths played this session, oldest first
        self._expect: tuple[str, str] | None = None  # ("undo" | "ab", path) on its way
        self._job: subprocess.Popen[str] | None = None
        self._job_kind = ""
        self._lock = threading.Lock()

    # --- model changes seen in the snapshots --------------------------------------------------
    def on_model(self, path: str) -> None:
        """The decode side now plays ``path`` (called on every model change)."""
        with self._lock:
            expect, self._expect = self._expect, None
            if expect is not None and expect[1] == path and len(self.history) >= 2:
                if expect[0] == "undo":
                    self.history.pop()
                else:  # A/B: the last two swap places, so the next /sillage/ab comes back
                    self.history[-1], self.history[-2] = self.history[-2], self.history[-1]
            elif not self.history or self.history[-1] != path:
                self.history.append(path)
        self._send_history()

    def _send_history(self) -> None:
        self.broadcast("/sillage/state/history", tuple(self.history))
        from instrument.training import versions

        on_disk = [str(p) for p in versions(self.user_dir)] if self.user_dir.is_dir() else []
        self.broadcast("/sillage/state/versions", tuple(on_disk))

    # --- side messages -------------------------------------------------------------------------
    def on_side(self, path: str, args: tuple[Any, ...]) -> None:
        handler = {
            "/sillage/dataset": self._dataset,
            "/sillage/dataset/region": self._dataset_region,
            "/sillage/train": self._train,
            "/sillage/train/stop": self._train_stop,
            "/sillage/model/history": lambda a: self._send_history(),
            "/sillage/model/undo": lambda a: self._switch("undo"),
            "/sillage/ab": lambda a: self._switch("ab"),
        }[path]
        handler(args)

    def _switch(self, kind: str) -> None:
        with self._lock:
            if len(self.history) < 2:
                what = "go back to" if kind == "undo" else "compare with"
                self.report(f"/sillage/{'model/undo' if kind == 'undo' else 'ab'}: no earlier "
                            f"model to {what} in this session; load one with /sillage/model")  # fmt: skip
                return
            target = self.history[-2]
            self._expect = (kind, target)
        self.put(Event(0.0, "/sillage/model", (target,), route="engine", path="/sillage/model"))

    # --- datasets ------------------------------------------------------------------------------
    def _sessions(self) -> list[Path]:
        if not self.record_dir.is_dir():
            return []
        return sorted(p for p in self.record_dir.iterdir() if (p / "audio.wav").is_file())

    def _dataset(self, args: tuple[Any, ...]) -> None:
        name, word = str(args[0]), str(args[1])
        sessions = self._sessions()
        if not sessions:
            self.report(f"/sillage/dataset: no recordings in {self.record_dir}; record with "
                        "/sillage/record 1, play, /sillage/record 0")  # fmt: skip
            return
        cmd = [str(self.dataset_dir / name)]
        for s in sessions:
            cmd += ["--recording", str(s)]
        if word:
            cmd += ["--word", word]
        self._start("dataset", [sys.executable, "-m", "models.dataset", *cmd], name)

    def _dataset_region(self, args: tuple[Any, ...]) -> None:
        name, region = str(args[0]), str(args[1])
        model = self.history[-1] if self.history else None
        map_path = self.map_for(model) if model else None
        if map_path is None:
            self.report("/sillage/dataset/region: the model playing has no map; build one with "
                        "python -m ui.map build --model MODEL AUDIO_DIR")  # fmt: skip
            return
        spec = f"{map_path}:{region}"
        box = self.regions().get(region)
        if box is not None:
            spec += "=" + ",".join(f"{v:.6f}" for v in box)
        cmd = [str(self.dataset_dir / name), "--region", spec]
        self._start("dataset", [sys.executable, "-m", "models.dataset", *cmd], name)

    # --- training ------------------------------------------------------------------------------
    def _train(self, args: tuple[Any, ...]) -> None:
        dataset, minutes, name, swap = str(args[0]), float(args[1]), str(args[2]), int(args[3])
        folder = Path(dataset) if Path(dataset).is_dir() else self.dataset_dir / dataset
        if not folder.is_dir():
            self.report(f"/sillage/train: no dataset {dataset!r} (looked in {self.dataset_dir}); "
                        "make one with /sillage/dataset NAME WORD")  # fmt: skip
            return
        if not self.history:
            self.report("/sillage/train: no model is playing yet")
            return
        cmd = [sys.executable, "-m", "instrument.training", str(folder), "--name", name,
               "--minutes", str(minutes), "--parent", self.history[-1],
               "--user-dir", str(self.user_dir), "--map", self.map_method,
               "--runs", str(self.user_dir / "runs")]  # fmt: skip
        self._start("train", cmd, name, swap=bool(swap))

    def _train_stop(self, args: tuple[Any, ...]) -> None:
        with self._lock:
            job = self._job
        if job is None or job.poll() is not None:
            self.report("/sillage/train/stop: no training job is running")
            return
        job.terminate()

    def _start(self, kind: str, cmd: list[str], name: str, *, swap: bool = False) -> None:
        with self._lock:
            if self._job is not None and self._job.poll() is None:
                self.report(f"/sillage/{kind}: a {self._job_kind} job is still running; wait for "
                            "it (/sillage/state/train) or stop it with /sillage/train/stop")  # fmt: skip
                return
            try:
                self._job = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True)  # fmt: skip
            except OSError as exc:
                self.report(f"/sillage/{kind}: could not start ({exc})")
                return
            self._job_kind = kind
            job = self._job
        threading.Thread(target=self._follow, args=(kind, job, name, swap),
                         name=f"sillage-{kind}", daemon=True).start()  # fmt: skip

    def _follow(self, kind: str, job: subprocess.Popen[str], name: str, swap: bool) -> None:
        """Relay a job's output as state; act on its end. Runs on its own thread."""
        assert job.stdout is not None
        tail: list[str] = []
        done: dict[str, Any] | None = None
        for line in job.stdout:
            line = line.strip()
            tail = [*tail[-4:], line]
            if kind == "dataset":
                continue
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            phase = str(msg.get("phase", ""))
            step = int(msg.get("step") or 0)
            loss = float(msg.get("loss") or -1.0)
            left = float(msg.get("minutes_left") or 0.0)
            detail = str(msg.get("model") or msg.get("message") or "")
            state = (phase, step, loss, left, detail)
            # UDP may drop one datagram: the messages that end a job go out three times.
            for _ in range(3 if phase in ("done", "error") else 1):
                self.broadcast("/sillage/state/train", state)
            if phase == "done":
                done = msg
            elif phase == "error":
                self.report(f"/sillage/train {name}: {msg.get('message')}")
        rc = job.wait()
        job.stdout.close()
        if kind == "dataset":
            if rc == 0:
                folder = str(self.dataset_dir / name)
                self.broadcast("/sillage/state/dataset", (name, folder, " / ".join(tail[-3:])))
            else:
                self.report(f"/sillage/dataset {name}: {tail[-1] if tail else f'exit {rc}'}")
            return
        if done is None:
            if rc != 0 and not any('"phase": "error"' in t for t in tail):
                self.report(f"/sillage/train {name}: the job ended (exit {rc}) before a model")
            return
        self._send_history()
        if swap:
            model = str(done["model"])
            self.put(Event(0.0, "/sillage/model", (model,), route="engine", path="/sillage/model"))

    def close(self) -> None:
        with self._lock:
            job = self._job
        if job is not None and job.poll() is None:
            job.terminate()

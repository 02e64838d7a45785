"""Session recording and tags, written by a thread of their own (the decode worker only queues).

``/sillage/record 1`` starts a session folder ``RECORD_DIR/YYYYmmdd-HHMMSS/`` (``-2``, ``-3``
... when a take already started in that second) with
  * ``score.jsonl``: every event the engine applied, at its frame time from the start: replay
    it with ``run_instrument.py --offline out.wav --score score.jsonl`` (the format of scores);
    written line by line, so a crash loses nothing already applied;
  * ``audio.wav``: what was played, 32-bit float; its header is brought up to date every
    ``FLUSH_S``, with the data, so a ``kill -9`` leaves a file that scipy and soundfile read
    (all but the last ``FLUSH_S`` of audio);
``/sillage/record 0`` closes it (the events of the frame that stops it are in the score). ``/sillage/tag WORD`` appends to ``RECORD_DIR/tags.jsonl``
(recording or not) the word, the time, the model and the latent being played, so moments
marked "keep" or "drop" while playing can feed the next training round.
"""

from __future__ import annotations

import json
import os
import queue
import struct
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from instrument.link.events import Event

SKIP = frozenset({"/sillage/record"})
FLUSH_S = 0.1  # audio and header reach the file at least this often (writer thread)


class CrashSafeWav:
    """A 32-bit float WAV written so that it is valid at every flush.

    Audio is buffered here and written with the header's two sizes right after it, every
    ``flush()``; a process killed between flushes leaves a file whose header matches its data.
    No PEAK chunk (libsndfile's has a timestamp) and no RF64: a take longer than 4 GB (3.1 h
    of 48 kHz stereo) is cut there, with a message.
    """

    HEADER = 44
    MAX_DATA = 2**32 - 64

    def __init__(self, path: Path, *, samplerate: int, channels: int) -> None:
        self.path = path
        self.channels = channels
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        fmt = struct.pack("<HHIIHH", 3, channels, samplerate, samplerate * channels * 4,
                          channels * 4, 32)  # fmt: skip
        header = b"RIFF" + struct.pack("<I", 36) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
        header += fmt + b"data" + struct.pack("<I", 0)
        os.write(self._fd, header)
        self.data_bytes = 0
        self._pending: list[bytes] = []
        self.full = False

    def write(self, frame: np.ndarray) -> None:
        if not self.full:
            self._pending.append(np.ascontiguousarray(frame, dtype="<f4").tobytes())

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        room = self.MAX_DATA - self.data_bytes
        if len(data) > room:
            data = data[: room - room % (4 * self.channels)]
            self.full = True
        os.write(self._fd, data)
        self.data_bytes += len(data)
        os.pwrite(self._fd, struct.pack("<I", 36 + self.data_bytes), 4)
        os.pwrite(self._fd, struct.pack("<I", self.data_bytes), 40)

    def close(self) -> None:
        self.flush()
        os.close(self._fd)


class SessionRecorder:
    """Queue-fed writer. Methods called on the decode worker only put on a queue."""

    def __init__(self, folder: str | Path, *, samplerate: int, channels: int) -> None:
        self.root = Path(folder)
        self.samplerate = samplerate
        self.channels = channels
        self.session: Path | None = None
        self._last_name = ""
        self._same_second = 0
        self._t0 = 0.0
        self._q: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="sillage-recorder", daemon=True)
        self._thread.start()
        self.errors: list[str] = []

    @property
    def recording(self) -> bool:
        return self.session is not None

    # --- decode worker side (queue only) ---------------------------------------------------
    def start(self, t: float) -> Path:
        name = time.strftime("%Y%m%d-%H%M%S")
        if name == self._last_name:  # two takes in one second: never the same folder
            self._same_second += 1
            session = self.root / f"{name}-{self._same_second + 1}"
        else:
            self._last_name, self._same_second = name, 0
            session = self.root / name
        self.session = session
        self._t0 = t
        self._q.put(("start", session))
        return session

    def stop(self) -> None:
        if self.session is not None:
            self.session = None
            self._q.put(("stop", None))

    def events(self, t: float, events: list[Event]) -> None:
        if self.session is None:
            return
        rows = [
            {"t": round(t - self._t0, 6), "address": e.address, "args": list(e.args)}
            for e in events
            if e.address not in SKIP and all(isinstance(a, (int, float, str)) for a in e.args)
        ]
        if rows:
            self._q.put(("events", rows))

    def frame(self, frame: np.ndarray) -> None:
        if self.session is not None:
            self._q.put(("audio", frame.copy()))

    def tag(self, t: float, word: str, latent: np.ndarray, model: str) -> None:
        self._q.put(
            (
                "tag",
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "t": round(t, 4),
                    "word": word,
                    "model": model,
                    "latent": [round(float(v), 5) for v in latent],
                    "session": self.session.name if self.session else None,
                },
            )
        )

    def close(self) -> None:
        self.stop()
        self._q.put(("quit", None))
        self._thread.join(timeout=5)

    # --- writer thread ---------------------------------------------------------------------
    def _run(self) -> None:

        score: Any = None
        audio: CrashSafeWav | None = None
        last_flush = time.monotonic()
        while True:
            try:
                kind, item = self._q.get(timeout=FLUSH_S)
            except queue.Empty:
                kind, item = "flush", None
            try:
                if kind == "start":
                    item = _new_folder(item)
                    # line-buffered: each applied event reaches the file as it is written
                    score = open(item / "score.jsonl", "w", encoding="utf-8", buffering=1)  # noqa: SIM115
                    audio = CrashSafeWav(
                        item / "audio.wav", samplerate=self.samplerate, channels=self.channels
                    )
                    print(f"sillage: recording to {item}", flush=True)
                elif kind == "events" and score is not None:
                    for row in item:
                        score.write(json.dumps(row) + "\n")
                elif kind == "audio" and audio is not None:
                    audio.write(item)
                elif kind == "tag":
                    self.root.mkdir(parents=True, exist_ok=True)
                    with open(self.root / "tags.jsonl", "a", encoding="utf-8") as fh:
                        fh.write(json.dumps(item) + "\n")
                elif kind in ("stop", "quit"):
                    if score is not None:
                        score.close()
                        score = None
                    if audio is not None:
                        audio.close()
                        audio = None
                    if kind == "quit":
                        return
                if audio is not None and time.monotonic() - last_flush >= FLUSH_S:
                    last_flush = time.monotonic()
                    audio.flush()
            except OSError as exc:  # a full disk must not stop the sound
                self.errors.append(f"recording: {exc}")
                print(f"sillage: recording failed ({exc}); still playing", flush=True)


def _new_folder(path: Path) -> Path:
    """Create the take's folder; if another take (another engine) has that name, add -2, -3."""
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, n = path, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = path.with_name(f"{path.name}-{n}")

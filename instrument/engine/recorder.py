"""Session recording and tags, written by a thread of their own (the decode worker only queues).

``/sillage/record 1`` starts a session folder ``RECORD_DIR/YYYYmmdd-HHMMSS/`` with
  * ``score.jsonl``: every event the engine applied, at its frame time from the start: replay
    it with ``run_instrument.py --offline out.wav --score score.jsonl`` (the format of scores);
  * ``audio.wav``: what was played;
``/sillage/record 0`` closes it. ``/sillage/tag WORD`` appends to ``RECORD_DIR/tags.jsonl``
(recording or not) the word, the time, the model and the latent being played, so moments
marked "keep" or "drop" while playing can feed the next training round.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from instrument.link.events import Event

SKIP = frozenset({"/sillage/record"})


class SessionRecorder:
    """Queue-fed writer. Methods called on the decode worker only put on a queue."""

    def __init__(self, folder: str | Path, *, samplerate: int, channels: int) -> None:
        self.root = Path(folder)
        self.samplerate = samplerate
        self.channels = channels
        self.session: Path | None = None
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
        session = self.root / time.strftime("%Y%m%d-%H%M%S")
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
        import soundfile as sf

        score: Any = None
        audio: Any = None
        while True:
            kind, item = self._q.get()
            try:
                if kind == "start":
                    item.mkdir(parents=True, exist_ok=True)
                    score = open(item / "score.jsonl", "w", encoding="utf-8")  # noqa: SIM115
                    audio = sf.SoundFile(
                        item / "audio.wav",
                        "w",
                        samplerate=self.samplerate,
                        channels=self.channels,
                        subtype="FLOAT",
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
            except OSError as exc:  # a full disk must not stop the sound
                self.errors.append(f"recording: {exc}")
                print(f"sillage: recording failed ({exc}); still playing", flush=True)

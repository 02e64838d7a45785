"""Events: everything that changes the sound, with a timestamp.

Live, adapters check each message once where it enters (:func:`instrument.protocol.accept`)
and put an :class:`Event` that carries the verdict (``route``, ``path``, ``index``) on an
:class:`EventQueue` or down the pipe; offline, a score file yields the same events, not yet
checked (``route`` None): the decode loop checks those at its door, once. The decode worker
drains both the same way, once per model frame.
"""

from __future__ import annotations

import json
import math
import queue
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from instrument.errors import ScoreError


@dataclass(frozen=True, slots=True)
class Event:
    """One control message.

    Parameters
    ----------
    time : float
        Seconds on the engine clock: score time offline; live, the engine time at arrival.
    address : str
        OSC-style address, e.g. ``/sillage/latent/0`` or ``/riot/1/raw`` or ``/midi/cc/7``.
    args : tuple
        Arguments, already parsed (numbers as float/int, strings as str).
    arrival : float
        ``time.perf_counter()`` when the event arrived (for latency measurement); NaN offline.
    source : tuple or None
        ``(host, port)`` of the sender, when it came over the network.
    route : str or None
        Where :func:`instrument.protocol.accept` sent it (``"engine"``, ``"side"``,
        ``"patch"``); None when nobody checked it yet (scores, in-process callers).
    path : str or None
        Its table entry (``/sillage/latent/<i>``) once checked; None for patch addresses.
    index : int or None
        The ``<i>`` of an indexed address.
    """

    time: float
    address: str
    args: tuple[Any, ...] = ()
    arrival: float = math.nan
    source: tuple[str, int] | None = field(default=None, compare=False)
    route: str | None = field(default=None, compare=False)
    path: str | None = field(default=None, compare=False)
    index: int | None = field(default=None, compare=False)

    def at(self, t: float) -> Event:
        """The same event stamped with engine time ``t`` (live events are stamped when the
        decode worker drains them: the control process does not know the audio clock)."""
        return replace(self, time=t)


ControlEvent = Event  # the name the pipe and the docs use


class EventQueue:
    """Lock-free-enough multi-producer queue drained by the decode worker.

    Backed by :class:`queue.SimpleQueue` (a C implementation whose ``put`` never blocks).
    """

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def put(self, event: Event) -> None:
        self._q.put(event)

    def drain(self, until: float = math.inf) -> list[Event]:
        """Return every queued event (live events are never in the future). Runs on the decode worker."""
        out: list[Event] = []
        if self._q.empty():  # most frames: no exception raised and caught to learn that
            return out
        get = self._q.get_nowait
        try:
            while True:
                out.append(get())
        except queue.Empty:
            pass
        return out

    def __len__(self) -> int:
        return self._q.qsize()


class ScoreSource:
    """Events from a score, drained in time order (offline render)."""

    def __init__(self, events: Iterable[Event]) -> None:
        self._events = sorted(events, key=lambda e: e.time)
        self._pos = 0

    def drain(self, until: float) -> list[Event]:
        """Return the events with ``time <= until`` not yet returned. Runs on the decode worker."""
        start = self._pos
        n = len(self._events)
        pos = start
        while pos < n and self._events[pos].time <= until:
            pos += 1
        self._pos = pos
        return self._events[start:pos]


def read_score(path: str | Path) -> list[Event]:
    """Read a JSON Lines score: one ``{"t": seconds, "address": str, "args": [...]}`` per line.

    Blank lines and lines starting with ``#`` or ``//`` are skipped.

    Raises
    ------
    ScoreError
        Naming the file, the line number and what was wrong.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScoreError(f"cannot read score {path}: {exc.strerror or exc}") from None
    return list(parse_score_lines(text.splitlines(), name=str(path)))


def parse_score_lines(lines: Iterable[str], *, name: str = "<score>") -> Iterator[Event]:
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("//"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ScoreError(
                f"{name}:{lineno}: not JSON ({exc.msg}); expected "
                '{"t": 0.25, "address": "/sillage/latent/0", "args": [1.5]}'
            ) from None
        if not isinstance(obj, dict):
            raise ScoreError(f"{name}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        t = obj.get("t")
        address = obj.get("address")
        args = obj.get("args", [])
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise ScoreError(f'{name}:{lineno}: "t" must be a time in seconds >= 0, got {t!r}')
        if not isinstance(address, str) or not address.startswith("/"):
            raise ScoreError(
                f"{name}:{lineno}: \"address\" must be an OSC address starting with '/', got {address!r}"
            )
        if not isinstance(args, list):
            args = [args]
        yield Event(float(t), address, tuple(args))


def write_score(path: str | Path, events: Iterable[Event]) -> None:
    """Write events as a JSON Lines score (the format :func:`read_score` reads)."""
    with open(path, "w", encoding="utf-8") as fh:
        for e in events:
            fh.write(
                json.dumps({"t": round(e.time, 6), "address": e.address, "args": list(e.args)})
                + "\n"
            )


def now() -> float:
    return time.perf_counter()

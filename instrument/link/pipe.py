"""Both ends of the link between the control process and the decode process.

Control → decode, events: :class:`EventSender` (control end) puts checked
:class:`~instrument.link.events.ControlEvent` objects down a ``multiprocessing`` pipe;
:class:`PipeSource` (decode end) drains them once per frame with ``poll`` (a select: no lock,
no GIL neighbour). In-process mode (:class:`QueueSender` / :class:`QueueSource`) uses an
:class:`~instrument.link.events.EventQueue` instead, with the same stamping.

Decode → control, state: :class:`EngineEnd` sends the typed messages of
:mod:`instrument.link.messages`.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from instrument.link.events import Event, EventQueue
from instrument.link.messages import FromEngine, Probe, Stop

_PIPE_ERRORS = (OSError, EOFError, BrokenPipeError)


def stamp(events: list[Event], t: float) -> list[Event]:
    """Stamp live events with the engine time of the frame that applies them."""
    return [e.at(t) for e in events]


class EventSender:
    """Control end: forwards events to the decode process (several OSC threads share it)."""

    def __init__(self, conn: Any, on_put: Callable[[Event], None] | None = None) -> None:
        self.conn = conn
        self.on_put = on_put
        self._lock = threading.Lock()

    def put(self, event: Event) -> None:
        if self.on_put is not None:
            self.on_put(event)
        with self._lock, contextlib.suppress(*_PIPE_ERRORS):
            self.conn.send(event)

    def stop(self) -> None:
        with self._lock, contextlib.suppress(*_PIPE_ERRORS):
            self.conn.send(Stop())

    def probe(self) -> None:
        """A latency probe (:class:`~instrument.link.messages.Probe`): changes nothing."""
        with self._lock, contextlib.suppress(*_PIPE_ERRORS):
            self.conn.send(Probe(time.perf_counter()))

    def rebind(self, conn: Any) -> None:
        """Send to a new decode process from now on (after a restart); the OSC inputs keep
        this sender."""
        with self._lock:
            self.conn = conn


class PipeSource:
    """Decode end: the events that arrived since the last frame."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.stop_requested = False
        self._probe = math.nan

    def drain(self, until: float) -> list[Event]:
        """Every event waiting in the pipe, stamped ``until``. Runs on the decode worker."""
        out: list[Event] = []
        conn = self.conn
        while conn.poll():
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                self.stop_requested = True
                break
            if isinstance(msg, Stop):
                self.stop_requested = True
                break
            if isinstance(msg, Probe):
                if math.isnan(self._probe):
                    self._probe = msg.sent
                continue
            out.append(msg)
        return stamp(out, until)

    def take_probe(self) -> float:
        """When the earliest probe drained since the last call was sent (NaN: none)."""
        sent, self._probe = self._probe, math.nan
        return sent


class QueueSender:
    """In-process mode's control end: an :class:`EventQueue` with the same ``on_put`` hook."""

    def __init__(self, q: EventQueue, on_put: Callable[[Event], None] | None = None) -> None:
        self.q = q
        self.on_put = on_put

    def put(self, event: Event) -> None:
        if self.on_put is not None:
            self.on_put(event)
        self.q.put(event)

    def probe(self) -> None:
        """In-process mode measures only real events."""


class QueueSource:
    """In-process mode's decode end."""

    def __init__(self, q: EventQueue) -> None:
        self.q = q
        self.stop_requested = False

    def drain(self, until: float) -> list[Event]:
        """Every queued event, stamped ``until``. Runs on the decode worker."""
        return stamp(self.q.drain(), until)


class EngineEnd:
    """Decode end of the state pipe: typed messages, one sender at a time, never raises
    when the control process has gone."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, msg: FromEngine) -> None:
        with self._lock, contextlib.suppress(*_PIPE_ERRORS):
            self.conn.send(msg)

"""State out: what the engine is playing, sent ~30 times a second to every subscriber.

Subscribers are host:port pairs given on the command line (``--state-to``) or by
``/sillage/subscribe <port>`` (the sender's host, that port: never the sender's source port,
since Max's [udpsend] sends from a random one). Runs on its own thread; reads the decode
worker's values without locking (latest value wins).
"""

from __future__ import annotations

import math
import queue
import socket
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from pythonosc.osc_message_builder import OscMessageBuilder

from instrument.patch.contract import Outgoing


def build(address: str, args: tuple[Any, ...] | list[Any]) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        if isinstance(a, (bool, np.bool_, int, np.integer)):
            b.add_arg(int(a), "i")
        elif isinstance(a, (float, np.floating)):
            b.add_arg(float(a), "f")
        else:
            b.add_arg(str(a), "s")
    return b.build().dgram


class StateSender:
    """Sends state and relays labels and patch output (``Outgoing``) over one UDP socket.

    Parameters
    ----------
    snapshot : callable
        Returns a list of ``(address, args)`` to send this tick (called on this thread).
    rate_hz : float
        State messages per second.
    """

    def __init__(
        self, snapshot: Callable[[], list[tuple[str, tuple[Any, ...]]]], *, rate_hz: float = 30.0
    ) -> None:
        self.snapshot = snapshot
        self.rate_hz = rate_hz
        self.subscribers: dict[tuple[str, int], None] = {}
        self.labels: dict[str, tuple[float, float]] = {}
        self.regions: dict[str, tuple[float, float, float, float]] = {}
        self.outbox: queue.SimpleQueue[Outgoing] = queue.SimpleQueue()
        self.on_subscribe: Callable[[tuple[str, int]], list[tuple[str, tuple[Any, ...]]]] | None = (
            None
        )
        self.sent = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sillage-state", daemon=True)

    def start(self) -> StateSender:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def subscribe(self, host: str, port: int) -> None:
        self.subscribers[(host, port)] = None
        hello = self.on_subscribe((host, port)) if self.on_subscribe else []
        for name, (x, y) in self.labels.items():
            hello.append(("/sillage/state/label", (name, x, y)))
        for name, box in self.regions.items():
            hello.append(("/sillage/state/region", (name, *box)))
        for address, args in hello:
            self._send_to((host, port), address, args)

    def unsubscribe(self, host: str, port: int) -> None:
        self.subscribers.pop((host, port), None)

    def broadcast(self, address: str, args: tuple[Any, ...]) -> None:
        for dest in list(self.subscribers):
            self._send_to(dest, address, args)

    def on_side(self, path: str, args: tuple[Any, ...], client: tuple[str, int]) -> None:
        """Subscribe/label messages from the OSC input thread."""
        if path == "/sillage/subscribe":
            self.subscribe(client[0], int(args[0]))
        elif path == "/sillage/unsubscribe":
            self.unsubscribe(client[0], int(args[0]))
        elif path == "/sillage/label":
            name, x, y = args
            self.labels[name] = (float(x), float(y))
            self.broadcast("/sillage/state/label", (name, float(x), float(y)))
        elif path == "/sillage/label/delete":
            self.labels.pop(args[0], None)
            self.broadcast("/sillage/state/label/delete", (args[0],))
        elif path == "/sillage/region":
            name, *box = args
            self.regions[name] = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
            self.broadcast("/sillage/state/region", (name, *self.regions[name]))
        elif path == "/sillage/region/delete":
            self.regions.pop(args[0], None)
            self.broadcast("/sillage/state/region/delete", (args[0],))

    def _send_to(self, dest: tuple[str, int], address: str, args: tuple[Any, ...]) -> None:
        try:
            self._sock.sendto(build(address, args), dest)
            self.sent += 1
        except OSError:
            pass  # a subscriber that went away must not stop the others

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        tick = 0
        while not self._stop.wait(period / 4):
            self._drain_outbox()
            tick += 1
            if tick % 4:
                continue
            if not self.subscribers:
                continue
            try:
                items = self.snapshot()
            except Exception:
                continue
            for address, args in items:
                if any(isinstance(a, float) and not math.isfinite(a) for a in args):
                    continue
                self.broadcast(address, args)

    def _drain_outbox(self) -> None:
        try:
            while True:
                out = self.outbox.get_nowait()
                self._send_to((out.host, out.port), out.address, out.args)
        except queue.Empty:
            pass

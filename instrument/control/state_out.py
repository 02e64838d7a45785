"""State out: what the engine is playing, sent ~30 times a second to every subscriber.

Subscribers are host:port pairs given on the command line (``--state-to``) or by
``/sillage/subscribe <port>`` (the sender's host, that port: never the sender's source port,
since Max's [udpsend] sends from a random one). Runs on its own thread; reads the decode
worker's values without locking (latest value wins).

What arrives over OSC is bounded: at most ``MAX_SUBSCRIBERS`` subscribers (a new one drops the
one that subscribed longest ago; subscribing again refreshes), ``MAX_LABELS`` labels and
regions, names of at most ``MAX_NAME`` characters. The OSC thread only records a change and
queues its sends; the replay of labels to a new subscriber and every relay go out on this
thread, so a flood of subscribes costs the OSC thread nothing but a dict update.
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

MAX_SUBSCRIBERS = 32
MAX_LABELS = 256  # labels, and regions (each)
MAX_NAME = 64


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
        self.on_refuse: Callable[[str, str], None] | None = None  # (kind, message)
        self._sends: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sillage-state", daemon=True)

    def start(self) -> StateSender:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started (an engine stopped while starting: not)
            self._thread.join(timeout=2)
        self._sock.close()

    def subscribe(self, host: str, port: int) -> None:
        dest = (host, port)
        self.subscribers.pop(dest, None)  # subscribing again: the newest again
        if len(self.subscribers) >= MAX_SUBSCRIBERS:
            stale = next(iter(self.subscribers))
            del self.subscribers[stale]
            self._refuse(
                "subscribers",
                f"more than {MAX_SUBSCRIBERS} subscribers: dropped {stale[0]}:{stale[1]}, the "
                "one that subscribed longest ago (subscribe again to stay)",
            )
        self.subscribers[dest] = None
        self.greet(host, port)

    def greet(self, host: str, port: int) -> None:
        """Send ``dest`` what a new subscriber gets (the model, the prebuffer, the labels and
        regions as they are now: bounded copies; later changes follow as relays)."""
        dest = (host, port)
        self._sends.put(("hello", dest, list(self.labels.items()), list(self.regions.items())))

    def _hello(self, dest: tuple[str, int], labels: list[Any], regions: list[Any]) -> None:
        """What a new subscriber gets: the model, the labels and regions (this thread)."""
        hello = self.on_subscribe(dest) if self.on_subscribe else []
        for name, (x, y) in labels:
            hello.append(("/sillage/state/label", (name, x, y)))
        for name, box in regions:
            hello.append(("/sillage/state/region", (name, *box)))
        for address, args in hello:
            self._send_to(dest, address, args)

    def unsubscribe(self, host: str, port: int) -> None:
        self.subscribers.pop((host, port), None)

    def broadcast(self, address: str, args: tuple[Any, ...]) -> None:
        for dest in list(self.subscribers):
            self._send_to(dest, address, args)

    def _refuse(self, kind: str, message: str) -> None:
        if self.on_refuse is not None:
            self.on_refuse(kind, message)

    def _named(self, table: dict[str, Any], name: str, what: str) -> bool:
        if len(name) > MAX_NAME:
            self._refuse("labels", f"{what} name of {len(name)} characters (at most {MAX_NAME})")
            return False
        if name not in table and len(table) >= MAX_LABELS:
            self._refuse("labels", f"more than {MAX_LABELS} {what}s; delete some first")
            return False
        return True

    def on_side(self, path: str, args: tuple[Any, ...], client: tuple[str, int]) -> None:
        """Subscribe/label messages from the OSC input thread: record, queue the sends."""
        if path == "/sillage/subscribe":
            self.subscribe(client[0], int(args[0]))
        elif path == "/sillage/unsubscribe":
            self.unsubscribe(client[0], int(args[0]))
        elif path == "/sillage/label":
            name, x, y = args
            if self._named(self.labels, name, "label"):
                self.labels[name] = (float(x), float(y))
                self._sends.put(("all", "/sillage/state/label", (name, float(x), float(y))))
        elif path == "/sillage/label/delete":
            self.labels.pop(args[0], None)
            self._sends.put(("all", "/sillage/state/label/delete", (args[0],)))
        elif path == "/sillage/region":
            name, *box = args
            if self._named(self.regions, name, "region"):
                self.regions[name] = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
                self._sends.put(("all", "/sillage/state/region", (name, *self.regions[name])))
        elif path == "/sillage/region/delete":
            self.regions.pop(args[0], None)
            self._sends.put(("all", "/sillage/state/region/delete", (args[0],)))

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
                item = self._sends.get_nowait()
                if item[0] == "hello":
                    self._hello(item[1], item[2], item[3])
                else:
                    self.broadcast(item[1], item[2])
        except queue.Empty:
            pass
        try:
            while True:
                out = self.outbox.get_nowait()
                self._send_to((out.host, out.port), out.address, out.args)
        except queue.Empty:
            pass

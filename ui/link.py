"""The UI's OSC link to the engine: subscribe, receive state, send play and label messages.

No Qt here: the receiver is a python-osc ``BlockingOSCUDPServer`` on its own thread whose
handlers only store the latest value of each state address (labels, regions and examples are
kept in order, as events). After a change the receiver calls ``notify`` once; it is not called
again until the GUI has taken the values with :meth:`EngineLink.take`. So a burst of state
messages costs the GUI one update, and a slow repaint never backs up the socket.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from instrument.protocol import ADDRESSES, DEFAULT_OSC_PORT, DEFAULT_STATE_PORT, PREFIX

SUBSCRIBE_PERIOD_S = 2.0

# Regions and regression examples are not in the protocol table yet (asked of the lead):
# the UI listens for their state addresses already, and sends regions only once the engine
# accepts them; until then an engine would reject each one as an unknown address.
_KNOWN = frozenset(a.path for a in ADDRESSES)
REGION = f"{PREFIX}/region" if f"{PREFIX}/region" in _KNOWN else None
REGION_DELETE = f"{PREFIX}/region/delete" if f"{PREFIX}/region/delete" in _KNOWN else None
STATE_REGION = f"{PREFIX}/state/region"
STATE_REGION_DELETE = f"{PREFIX}/state/region/delete"
STATE_EXAMPLE = f"{PREFIX}/state/example"
STATE_EXAMPLE_CLEAR = f"{PREFIX}/state/example/clear"

# Latest-value state addresses: key in the snapshot -> address.
_LATEST = {
    "latent": f"{PREFIX}/state/latent",
    "xy": f"{PREFIX}/state/xy",
    "level": f"{PREFIX}/state/level",
    "underruns": f"{PREFIX}/state/underruns",
    "latency_ms": f"{PREFIX}/state/latency_ms",
    "prebuffer": f"{PREFIX}/state/prebuffer",
    "decode_ms": f"{PREFIX}/state/decode_ms",
    "model": f"{PREFIX}/state/model",
    "error": f"{PREFIX}/state/error",
}
# Ordered events: address -> event kind.
_EVENTS = {
    f"{PREFIX}/state/label": "label",
    f"{PREFIX}/state/label/delete": "label/delete",
    STATE_REGION: "region",
    STATE_REGION_DELETE: "region/delete",
    STATE_EXAMPLE: "example",
    STATE_EXAMPLE_CLEAR: "example/clear",
    f"{PREFIX}/state/tag": "tag",
    f"{PREFIX}/state/train": "train",
    f"{PREFIX}/state/dataset": "dataset",
}


def parse_hostport(text: str, *, default_port: int = DEFAULT_OSC_PORT) -> tuple[str, int]:
    """``"HOST:PORT"``, ``"HOST"`` or ``":PORT"`` -> ``(host, port)``; host defaults to localhost."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, ""
    try:
        number = int(port) if port else default_port
    except ValueError:
        raise ValueError(f"engine address {text!r}: port {port!r} is not a number") from None
    if not 0 < number < 65536:
        raise ValueError(f"engine address {text!r}: port {number} is outside 1..65535")
    return host or "127.0.0.1", number


@dataclass
class Snapshot:
    """What changed since the last :meth:`EngineLink.take`."""

    values: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    last_seen: float | None = None  # time.monotonic() of the last state message


class EngineLink:
    """Subscribe to an engine's state and send it play and label messages.

    Parameters
    ----------
    engine : (host, port)
        The engine's OSC address.
    listen_port : int
        Port on which state is received; 0 picks a free one (see :attr:`listen_port`).
    listen_host : str
        Interface to listen on; ``"0.0.0.0"`` so an engine on another machine can reach us.
    notify : callable, optional
        Called (from the receiver thread) when new state is waiting to be taken.
    """

    def __init__(
        self,
        engine: tuple[str, int] = ("127.0.0.1", DEFAULT_OSC_PORT),
        *,
        listen_port: int = DEFAULT_STATE_PORT,
        listen_host: str = "0.0.0.0",
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.notify = notify
        self._client = SimpleUDPClient(*engine)
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {}
        self._events: deque[tuple[Any, ...]] = deque(maxlen=10000)
        self._pending = False
        self._last_seen: float | None = None
        self._stop = threading.Event()
        dispatcher = Dispatcher()
        for key, address in _LATEST.items():
            dispatcher.map(address, self._on_latest, key)
        for address, kind in _EVENTS.items():
            dispatcher.map(address, self._on_event, kind)
        self._server = BlockingOSCUDPServer((listen_host, listen_port), dispatcher)
        # Room for bursts (several engines, a repaint that holds the GIL): UDP drops on overflow.
        with contextlib.suppress(OSError):
            self._server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._threads: list[threading.Thread] = []

    @property
    def listen_port(self) -> int:
        """The port state is received on."""
        return int(self._server.server_address[1])

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start receiving, and subscribe now and every 2 s (an engine may start later)."""
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="ui-osc-in", daemon=True),
            threading.Thread(target=self._subscribe_loop, name="ui-osc-subscribe", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def close(self) -> None:
        """Unsubscribe and stop the threads (a second call does nothing)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._send(f"{PREFIX}/unsubscribe", self.listen_port)
        if self._threads:
            self._server.shutdown()
        self._server.server_close()
        self._client.close()
        for t in self._threads:
            t.join(timeout=2.0)

    def _subscribe_loop(self) -> None:
        while not self._stop.is_set():
            self._send(f"{PREFIX}/subscribe", self.listen_port)
            self._stop.wait(SUBSCRIBE_PERIOD_S)

    # ------------------------------------------------------------------ sending
    def _send(self, address: str, *args: Any) -> None:
        # An unreachable engine (no route, host down) is not an error: the next subscribe retries.
        with contextlib.suppress(OSError):
            self._client.send_message(address, list(args))

    def send_xy(self, x: float, y: float) -> None:
        """Play the point ``(x, y)`` of the map (0..1, clamped)."""
        self._send(f"{PREFIX}/xy", _clamp01(x), _clamp01(y))

    def send_latent(self, z: np.ndarray) -> None:
        """Play a latent vector directly (when the engine has no map)."""
        self._send(f"{PREFIX}/latent", *(float(v) for v in np.asarray(z).ravel()))

    def send_label(self, name: str, x: float, y: float) -> None:
        """Create or move a label."""
        self._send(f"{PREFIX}/label", name, _clamp01(x), _clamp01(y))

    def send_label_delete(self, name: str) -> None:
        """Delete a label."""
        self._send(f"{PREFIX}/label/delete", name)

    def send_region(self, name: str, box: tuple[float, float, float, float]) -> None:
        """Create or change a region ``(x0, y0, x1, y1)`` (once the protocol has regions)."""
        if REGION is not None:
            self._send(REGION, name, *(_clamp01(v) for v in box))

    def send_region_delete(self, name: str) -> None:
        """Delete a region (once the protocol has regions)."""
        if REGION_DELETE is not None:
            self._send(REGION_DELETE, name)

    def send_dataset_region(self, name: str, region: str) -> None:
        """Ask the engine to build ``datasets/<name>`` from the audio behind a region."""
        self._send(f"{PREFIX}/dataset/region", name, region)

    # ------------------------------------------------------------------ receiving
    def _on_latest(self, address: str, fixed: list[Any], *args: Any) -> None:
        key = fixed[0]
        value: Any
        if key == "latent":
            value = np.asarray(args, dtype=np.float32)
        elif key in ("underruns",):
            value = int(args[0]) if args else 0
        elif key in ("model", "error", "prebuffer"):
            value = tuple(args)
        else:
            value = tuple(float(a) for a in args)
        with self._lock:
            self._values[key] = value
        self._touch()

    def _on_event(self, address: str, fixed: list[Any], *args: Any) -> None:
        with self._lock:
            self._events.append((fixed[0], *args))
        self._touch()

    def _touch(self) -> None:
        with self._lock:
            self._last_seen = time.monotonic()
            wake = not self._pending
            self._pending = True
        if wake and self.notify is not None:
            self.notify()

    def take(self) -> Snapshot:
        """Everything received since the last call; re-arms ``notify``."""
        with self._lock:
            snap = Snapshot(dict(self._values), list(self._events), self._last_seen)
            self._values.clear()
            self._events.clear()
            self._pending = False
        return snap


def _clamp01(v: float) -> float:
    return min(max(float(v), 0.0), 1.0)

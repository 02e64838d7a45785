"""OSC in: parse, validate, enqueue. Nothing here changes the sound directly.

python-osc's BlockingOSCUDPServer runs in its own thread (measured 45k msg/s; the threading
server managed 3k msg/s with 4.7 ms p99). Every message is checked once, here, by
:func:`instrument.protocol.accept` against the address table (``/sillage/...``) or the
current patch (sensors, MIDI bridges, Wekinator); bad ones are counted per kind and reported,
rate-limited, with what was expected. Good ones leave with their route: ``side`` ones
(subscribe, labels) are answered in this process, the others cross to the decode process.

Before python-osc sees a datagram, :class:`~instrument.control.osc_gate.Gate` checks the
sender (``--allow``, a rate limit per sender) and the bytes (size, depth, counts, type tags,
truncation, timetags): python-osc alone would repair what it should refuse. Files named by
``/sillage/model`` and ``/sillage/patch`` are resolved inside the allowed folders here
(:class:`~instrument.control.osc_files.FileRules`), so only checked paths cross.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from pythonosc import osc_packet
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from instrument.control.osc_files import FileRules
from instrument.control.osc_gate import Gate, GateLimits, Refused
from instrument.errors import OSCInputError
from instrument.link.events import Event, EventQueue, now
from instrument.metrics import Reporter
from instrument.patch.contract import Controller
from instrument.protocol import accept


class _Dispatcher(Dispatcher):
    """Hands every message of a packet to one callback; counts packets that do not parse."""

    def __init__(
        self,
        on_message: Callable[[tuple[str, int], str, tuple[Any, ...]], None],
        reporter: Reporter,
        gate: Gate,
    ) -> None:
        super().__init__()
        self._on_message = on_message
        self._reporter = reporter
        self._gate = gate

    def call_handlers_for_packet(self, data: bytes, client_address: tuple[str, int]) -> list:
        try:
            self._gate.check(data, client_address)
        except Refused as exc:
            self._reporter.reject(exc.kind, str(exc))
            return []
        try:
            packet = osc_packet.OscPacket(data)
        except osc_packet.ParseError as exc:
            self._reporter.reject(
                "malformed",
                f"undecodable OSC packet of {len(data)} bytes from "
                f"{client_address[0]} ({exc}); send OSC 1.0 messages",
            )
            return []
        except Exception as exc:  # python-osc raises other errors on some truncated packets
            self._reporter.reject(
                "malformed",
                f"undecodable OSC packet of {len(data)} bytes ({type(exc).__name__}: {exc})",
            )
            return []
        for timed in packet.messages:
            msg = timed.message
            self._on_message(client_address, msg.address, tuple(msg.params))
        return []


class _Server(BlockingOSCUDPServer):
    # one byte over the gate's limit, so an oversized datagram is seen as such (the kernel
    # cuts it to this), not as a cut one
    max_packet_size = GateLimits().max_packet_bytes + 1

    def __init__(self, address: tuple[str, int], dispatcher: _Dispatcher, reporter: Reporter):
        self._reporter = reporter
        # Big receive buffer: bursts from sensors at 200 Hz × many dancers must not be dropped
        # by the kernel while the decode worker holds the GIL.
        super().__init__(address, dispatcher)
        with contextlib.suppress(OSError):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return True  # the gate (in the dispatcher) checks the sender first, then the bytes


class OSCInput:
    """One UDP port feeding the engine's event queue.

    Parameters
    ----------
    queue : EventQueue
    controller : callable
        Returns the current patch's controller (it may be swapped while running).
    clock : callable
        Engine time in seconds (stamped on each event).
    on_side : callable, optional
        Receives ``(address, args, client_address)`` for subscribe/label messages.
    """

    def __init__(
        self,
        queue: EventQueue,
        *,
        host: str,
        port: int,
        controller: Callable[[], Controller],
        clock: Callable[[], float],
        reporter: Reporter,
        on_side: Callable[[str, tuple[Any, ...], tuple[str, int]], None] | None = None,
        name: str = "osc",
        gate: Gate | None = None,
        files: FileRules | None = None,
    ) -> None:
        self.queue = queue
        self.controller = controller
        self.clock = clock
        self.reporter = reporter
        self.on_side = on_side
        self.received = 0
        self.accepted = 0
        self.gate = gate or Gate()
        self.files = files
        dispatcher = _Dispatcher(self._on_message, reporter, self.gate)
        try:
            self.server = _Server((host, port), dispatcher, reporter)
        except OSError as exc:
            raise OSError(
                f"cannot listen for OSC on {host}:{port} ({exc.strerror}); "
                f"another program (or another Sillage) uses it: pick another port with --osc-port"
            ) from None
        self.host, self.port = self.server.server_address[:2]
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"sillage-{name}-{self.port}",
            daemon=True,
        )

    def start(self) -> OSCInput:
        self._thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=2)

    def _on_message(self, client: tuple[str, int], address: str, args: tuple[Any, ...]) -> None:
        self.received += 1
        arrival = now()
        try:
            route, path, index, args = accept(address, args, self.controller().validate)
        except OSCInputError as exc:
            self.reporter.reject(exc.kind, str(exc))
            return
        except Exception as exc:  # a patch's validator must never kill the server thread
            self.reporter.reject("validator", f"{address}: {type(exc).__name__}: {exc}")
            return
        if self.files is not None and path in ("/sillage/model", "/sillage/patch"):
            try:
                args = (self.files.resolve(path.rsplit("/", 1)[1], str(args[0])),)
            except OSCInputError as exc:
                self.reporter.reject(exc.kind, str(exc))
                return
        self.accepted += 1
        if route == "side":
            if self.on_side is not None:
                assert path is not None
                self.on_side(path, args, client)
            return
        self.queue.put(Event(self.clock(), address, args, arrival, client, route, path, index))

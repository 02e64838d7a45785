"""MIDI input adapter: ports by name substring, callbacks only, messages become Events.

Events put on the engine's queue (``channel`` 1-16)::

    /midi/cc       <channel> <control 0-127> <value 0-127>
    /midi/note     <channel> <note 0-127> <velocity 0-127>   (note off = velocity 0)
    /midi/bend     <channel> <value -8192..8191>
    /midi/pressure <channel> <value 0-127>                   (channel aftertouch)
    /midi/program  <channel> <program 0-127>

Ports are opened with python-rtmidi directly and messages parsed with mido: mido's own rtmidi
backend parses inside its callback and silently drops malformed bytes, but the instrument must
count garbage MIDI, so the raw bytes come to us and ``mido.Message.from_bytes`` judges them.
Backends are tried in order ALSA, then JACK (machines without ``/dev/snd/seq`` — like ours —
only have JACK MIDI, which needs a running JACK server). Nothing here ever blocks: rtmidi calls
:meth:`MidiInput.handle` on its own thread, which parses and ``queue.put``s.

No backend or no port: :func:`start_midi` returns a handle whose ``ok`` is False and whose
``message`` says why and what to do; the instrument keeps running without MIDI.

``python -m instrument.control.midi_in --list`` lists the input ports each backend sees.
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import mido

from instrument.link.events import Event

VIRTUAL_PREFIX = "virtual:"


class Queue(Protocol):
    def put(self, event: Event) -> None: ...


class RawInput(Protocol):
    """What we need of a port: rtmidi.MidiIn's interface (and the fake's)."""

    def set_callback(self, func: Callable[[tuple[list[int], float], Any], None]) -> None: ...

    def close_port(self) -> None: ...


@dataclass
class MidiStats:
    received: int = 0
    events: int = 0
    ignored: int = 0  # valid MIDI Sillage does not use (clock, sysex, ...)
    garbage: int = 0  # bytes that are not a MIDI message


def message_to_event(msg: mido.Message, t: float, arrival: float) -> Event | None:
    """One mido message to an Event (None for kinds Sillage ignores)."""
    kind = msg.type
    if kind == "control_change":
        return Event(
            t, "/midi/cc", (msg.channel + 1, msg.control, msg.value), arrival, route="patch"
        )
    if kind == "note_on":
        return Event(
            t, "/midi/note", (msg.channel + 1, msg.note, msg.velocity), arrival, route="patch"
        )
    if kind == "note_off":
        return Event(t, "/midi/note", (msg.channel + 1, msg.note, 0), arrival, route="patch")
    if kind == "pitchwheel":
        return Event(t, "/midi/bend", (msg.channel + 1, msg.pitch), arrival, route="patch")
    if kind == "aftertouch":
        return Event(t, "/midi/pressure", (msg.channel + 1, msg.value), arrival, route="patch")
    if kind == "program_change":
        return Event(t, "/midi/program", (msg.channel + 1, msg.program), arrival, route="patch")
    return None


class MidiInput:
    """One open input port feeding an event queue. ``close()`` is idempotent.

    Attributes
    ----------
    ok : bool
        False when no port could be opened (``message`` says why).
    """

    def __init__(
        self, queue: Queue, clock: Callable[[], float], port: RawInput | None = None, *,
        name: str = "", backend: str = "", message: str = "",
    ) -> None:  # fmt: skip
        self.queue = queue
        self.clock = clock
        self.port = port
        self.name = name
        self.backend = backend
        self.message = message
        self.stats = MidiStats()
        self._lock = threading.Lock()  # stats only; never held while putting on the queue
        if port is not None:
            port.set_callback(self.handle)

    @property
    def ok(self) -> bool:
        return self.port is not None

    def handle(self, packet: tuple[Sequence[int], float], data: Any = None) -> None:
        """rtmidi callback (its own thread): parse, convert, enqueue. Never blocks."""
        raw, _delta = packet
        self.stats.received += 1
        try:
            msg = mido.Message.from_bytes(list(raw))
        except (ValueError, TypeError, IndexError):
            self.stats.garbage += 1
            return
        from instrument.link.events import now

        event = message_to_event(msg, self.clock(), now())
        if event is None:
            self.stats.ignored += 1
            return
        self.stats.events += 1
        self.queue.put(event)

    def close(self) -> None:
        port, self.port = self.port, None
        if port is not None:
            try:
                port.set_callback(lambda *a: None)
                port.close_port()
            except Exception:
                pass


class FakeMidiInput:
    """A pure-Python stand-in for ``rtmidi.MidiIn`` (there is no MIDI hardware here).

    ``feed(bytes)`` delivers a raw message the way rtmidi does: to the callback, on the caller's
    thread (rtmidi uses its own thread; nothing in the adapter depends on which).
    """

    def __init__(self, name: str = "Fake MIDI") -> None:
        self.name = name
        self.closed = False
        self._callback: Callable[[tuple[list[int], float], Any], None] | None = None

    def set_callback(self, func: Callable[[tuple[list[int], float], Any], None]) -> None:
        self._callback = func

    def close_port(self) -> None:
        self.closed = True

    def feed(self, data: Sequence[int], delta: float = 0.0) -> None:
        if self._callback is not None and not self.closed:
            self._callback((list(data), delta), None)


@dataclass
class Backend:
    name: str
    api: int
    ports: list[str] = field(default_factory=list)
    error: str = ""


def _backends() -> list[Backend]:
    """rtmidi APIs to try, with their ports (or why they failed)."""
    import rtmidi

    os.environ.setdefault("JACK_NO_START_SERVER", "1")  # never spawn a JACK server by surprise
    out = []
    for name, api in (("ALSA", rtmidi.API_LINUX_ALSA), ("JACK", rtmidi.API_UNIX_JACK)):
        if api not in rtmidi.get_compiled_api():
            continue
        b = Backend(name, api)
        try:
            probe = rtmidi.MidiIn(api, "sillage-probe")
            b.ports = list(probe.get_ports())
            probe.delete()
        except Exception as exc:
            b.error = str(exc)
        out.append(b)
    return out


def start_midi(spec: str, queue: Queue, clock: Callable[[], float]) -> MidiInput:
    """Open a MIDI input by name substring and feed ``queue``.

    Parameters
    ----------
    spec : str
        ``""``: the first input port; ``"nano"``: the port whose name contains it
        (case-insensitive; ambiguous names list every match); ``"virtual:Sillage"``: create a
        virtual input port (JACK only here) that other programs connect to.
    queue : object with ``put(Event)``
    clock : callable
        Engine time in seconds, stamped on every event.

    Returns
    -------
    MidiInput
        Check ``.ok``; when False, ``.message`` is the line to print.
    """
    import rtmidi

    backends = _backends()
    usable = [b for b in backends if not b.error]
    if not usable:
        why = "; ".join(f"{b.name}: {b.error}" for b in backends) or "python-rtmidi has no backend"
        return MidiInput(
            queue, clock, message=f"MIDI unavailable ({why}). Without /dev/snd/seq only JACK MIDI "
            "works: start a JACK server (e.g. `jackd -d dummy -r 48000`) and try again. "
            "Sillage keeps running without MIDI.",
        )  # fmt: skip
    if spec.startswith(VIRTUAL_PREFIX):
        b = usable[0]
        name = spec[len(VIRTUAL_PREFIX) :] or "Sillage"
        try:
            port = rtmidi.MidiIn(b.api, "sillage")
            port.open_virtual_port(name)
        except Exception as exc:  # rtmidi's own error classes
            return MidiInput(queue, clock, message=f"cannot create virtual MIDI port {name!r} ({exc}); "
                             "Sillage keeps running without MIDI.")  # fmt: skip
        port.ignore_types(sysex=True, timing=True, active_sense=True)
        return MidiInput(queue, clock, port, name=name, backend=b.name)
    matches = [
        (b, k, p) for b in usable for k, p in enumerate(b.ports) if spec.lower() in p.lower()
    ]
    if not matches:
        seen = [p for b in usable for p in b.ports]
        return MidiInput(
            queue, clock, message=f"no MIDI input port matching {spec!r}; ports: "
            f"{', '.join(seen) or 'none'}. Sillage keeps running without MIDI.",
        )  # fmt: skip
    if spec and len(matches) > 1:
        names = ", ".join(p for _, _, p in matches)
        return MidiInput(queue, clock, message=f"MIDI port name {spec!r} is ambiguous: {names}")
    b, index, pname = matches[0]
    try:
        port = rtmidi.MidiIn(b.api, "sillage")
        port.open_port(index)
    except Exception as exc:  # rtmidi's own error classes
        return MidiInput(queue, clock, message=f"cannot open MIDI port {pname!r} ({exc}); "
                         "Sillage keeps running without MIDI.")  # fmt: skip
    port.ignore_types(sysex=True, timing=True, active_sense=True)
    return MidiInput(queue, clock, port, name=pname, backend=b.name)


def open_patch_midi(
    patch: Any, queue: Queue, clock: Callable[[], float], *, log: Callable[[str], None] = print
) -> MidiInput | None:
    """Open the MIDI input a patch declares (``patch.midi``); None when it declares none.

    The engine calls this after loading a patch (and closes the handle on stop or patch
    change). When no port can be opened, ``log`` gets the message and the handle is inert.
    """
    spec = getattr(patch, "midi", None)
    if spec is None:
        return None
    midi = start_midi(spec, queue, clock)
    if midi.ok:
        log(f"sillage: MIDI in from {midi.name!r} ({midi.backend})")
    else:
        log(f"sillage: {midi.message}")
    return midi


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Sillage MIDI ports")
    parser.add_argument("-l", "--list", action="store_true", help="list MIDI input ports (default)")
    parser.parse_args(argv)
    for b in _backends():
        state = b.error or (", ".join(b.ports) if b.ports else "no input ports")
        print(f"{b.name}: {state}")


if __name__ == "__main__":
    main()

"""MIDI adapter: messages become events, garbage is counted, no backend is not a crash.

There is no MIDI hardware here: :class:`instrument.control.midi_in.FakeMidiInput` stands in for
``rtmidi.MidiIn`` (same callback interface). The ``jack`` test opens a real virtual port on a
JACK server with the dummy driver.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from instrument.control.midi_in import FakeMidiInput, MidiInput, open_patch_midi, start_midi
from instrument.link.events import Event, EventQueue
from instrument.patch import PatchContext, load_patch
from instrument.patch.contract import ControlState


class Collect:
    """A queue that records events and signals when one arrives (wait on it, never sleep)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.arrived = threading.Event()

    def put(self, event: Event) -> None:
        self.events.append(event)
        self.arrived.set()


def test_messages_become_events_stamped_with_engine_time() -> None:
    q = Collect()
    fake = FakeMidiInput()
    midi = MidiInput(q, clock=lambda: 1.25, port=fake)
    fake.feed([0xB0, 7, 100])  # CC 7 = 100 on channel 1
    fake.feed([0x92, 60, 90])  # note on, channel 3
    fake.feed([0x82, 60, 0])  # note off
    fake.feed([0x90, 61, 0])  # note on with velocity 0 = note off
    fake.feed([0xE0, 0x00, 0x40])  # pitch bend centre
    fake.feed([0xE0, 0x7F, 0x7F])  # pitch bend max
    fake.feed([0xD0, 33])  # channel aftertouch
    fake.feed([0xC0, 5])  # program change
    fake.feed([0xF8])  # clock: valid, ignored
    got = [(e.address, e.args) for e in q.events]
    assert got == [
        ("/midi/cc", (1, 7, 100)),
        ("/midi/note", (3, 60, 90)),
        ("/midi/note", (3, 60, 0)),
        ("/midi/note", (1, 61, 0)),
        ("/midi/bend", (1, 0)),
        ("/midi/bend", (1, 8191)),
        ("/midi/pressure", (1, 33)),
        ("/midi/program", (1, 5)),
    ]
    assert all(e.time == 1.25 for e in q.events)
    assert midi.stats.ignored == 1 and midi.stats.garbage == 0
    midi.close()
    midi.close()  # idempotent
    assert fake.closed


def test_garbage_midi_is_counted_never_raised() -> None:
    q = Collect()
    fake = FakeMidiInput()
    midi = MidiInput(q, clock=lambda: 0.0, port=fake)
    garbage = [
        [],
        [0x12],
        [0x90, 200, 1],
        [0xB0, 7],
        [0xB0, 7, 1, 2],
        [0xF5, 1, 2, 3],
        [0x80, -1, 0],
    ]
    rng = np.random.default_rng(0)
    garbage += [rng.integers(0, 256, rng.integers(0, 6)).tolist() for _ in range(2000)]
    for g in garbage:
        fake.feed(g)
    s = midi.stats
    assert s.received == len(garbage)
    assert s.garbage >= 7
    assert s.events + s.ignored + s.garbage == s.received
    # whatever did get through is well-formed for the controller
    c = load_patch("midi-controller", context=PatchContext(4, 48000)).controller
    for e in q.events:
        c.validate(e.address, e.args)


def test_no_backend_or_port_gives_a_clear_message() -> None:
    q = EventQueue()
    midi = start_midi("no such controller 1234", q, clock=lambda: 0.0)
    assert not midi.ok
    assert "MIDI" in midi.message and "keeps running" in midi.message
    midi.close()


def test_midi_drives_the_midi_controller_patch_and_midi_learn() -> None:
    c = load_patch("midi-controller", context=PatchContext(4, 48000)).controller
    q = Collect()
    fake = FakeMidiInput()
    MidiInput(q, clock=lambda: 0.0, port=fake)
    state = ControlState(4)
    fake.feed([0xB0, 1, 127])  # fader 2 all the way up
    for e in q.events:
        c.on_event(e, state)
    z = c.target(0.0, state)
    assert z[1] == pytest.approx(3.0) and z[0] == pytest.approx(0.0)
    # MIDI learn: the next moved control (CC 74) takes slot 1 (fader 1's place).
    c.on_event(Event(0.1, "/sillage/learn", ("midi",)), state)
    q.events.clear()
    fake.feed([0xB0, 74, 0])
    for e in q.events:
        c.on_event(e, state)
    assert c.target(0.1, state)[0] == pytest.approx(-3.0)


@pytest.mark.jack
def test_jack_virtual_port_round_trip() -> None:
    import rtmidi

    from tests.jackserver import jack_server

    with jack_server() as server:
        old = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = server
        try:
            q = Collect()
            midi = start_midi("virtual:SillageTest", q, clock=lambda: 2.0)
            assert midi.ok, midi.message
            out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "sillage-test-out")
            ports = out.get_ports()
            index = next(i for i, p in enumerate(ports) if "SillageTest" in p)
            out.open_port(index)
            out.send_message([0xB0, 7, 99])
            assert q.arrived.wait(5.0), "no MIDI event within 5 s"
            assert (q.events[0].address, q.events[0].args) == ("/midi/cc", (1, 7, 99))
            out.close_port()
            midi.close()
        finally:
            if old is None:
                os.environ.pop("JACK_DEFAULT_SERVER", None)
            else:
                os.environ["JACK_DEFAULT_SERVER"] = old


def test_open_patch_midi_says_why_and_returns_an_inert_handle() -> None:
    lines: list[str] = []
    patch = load_patch("midi-controller", context=PatchContext(4, 48000))
    patch.midi = "no such port 98765"
    midi = open_patch_midi(patch, EventQueue(), lambda: 0.0, log=lines.append)
    assert midi is not None and not midi.ok and "keeps running" in lines[0]
    midi.close()
    assert (
        open_patch_midi(
            load_patch("default", context=PatchContext(4, 48000)), EventQueue(), lambda: 0.0
        )
        is None
    )

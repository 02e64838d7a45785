"""The path of a message: checked once where it enters, routed by the table, typed across
the pipe; loads reach the decode loop through a one-slot mailbox; state comes back typed."""

from __future__ import annotations

import pickle
import shutil
import threading
from pathlib import Path

import pytest

from instrument.engine.loading import Mailbox, Swap
from instrument.errors import OSCInputError, SillageError
from instrument.link.events import Event, EventQueue
from instrument.link.messages import EngineSnapshot
from instrument.link.pipe import PipeSource, QueueSource
from instrument.protocol import INPUTS, accept


def test_every_input_has_a_route_and_engine_ones_a_handler(mono_model: Path) -> None:
    from instrument.engine.loop import DecodeLoop
    from instrument.engine.runtime import ModelRuntime
    from instrument.patch import PatchContext, load_patch

    rt = ModelRuntime(mono_model)
    loop = DecodeLoop(rt, load_patch("default", context=PatchContext(4, 48000)), EventQueue())
    engine = {a.path for a in INPUTS if a.route == "engine"}
    assert set(loop._handlers) == engine
    assert {a.route for a in INPUTS} == {"engine", "side", "patch"}


def test_accept_routes_and_normalises() -> None:
    assert accept("/sillage/latent/2", [1]) == ("engine", "/sillage/latent/<i>", 2, (1.0,))
    assert accept("/sillage/subscribe", [7771.0]) == ("side", "/sillage/subscribe", None, (7771,))
    assert accept("/sillage/learn", ["record"])[0] == "patch"
    assert accept("/riot/1/raw", (1, 2)) == ("patch", None, None, (1, 2))
    with pytest.raises(OSCInputError) as info:
        accept("/sillage/gain", [0.0])
    assert info.value.kind == "unknown_address" and isinstance(info.value, SillageError)

    def refuse(address: str, args: tuple) -> tuple:
        raise OSCInputError("type", "no")

    with pytest.raises(OSCInputError):
        accept("/sillage/learn/x", (), refuse)


def test_mailbox_holds_one_and_never_blocks_the_taker() -> None:
    box: Mailbox[Swap] = Mailbox()
    assert box.take() is None
    first, second = Swap(), Swap()
    assert box.post(first)
    assert not box.post(second, timeout=0.01)  # the slot is full: the loader waits
    poster = threading.Thread(target=box.post, args=(second,))
    poster.start()
    assert box.take() is first
    poster.join(timeout=5)
    assert box.take() is second
    assert box.take() is None


def test_pipe_carries_checked_events_stamped_on_arrival() -> None:
    import multiprocessing as mp

    from instrument.link.pipe import EventSender

    recv, send = mp.Pipe(duplex=False)
    sender = EventSender(send)
    route, path, index, args = accept("/sillage/latent/1", [0.5])
    sender.put(Event(0.0, "/sillage/latent/1", args, 1.0, None, route, path, index))
    sender.stop()
    source = PipeSource(recv)
    (event,) = source.drain(until=2.5)
    assert (event.time, event.route, event.path, event.index, event.args) == (
        2.5,
        "engine",
        "/sillage/latent/<i>",
        1,
        (0.5,),
    )
    assert source.stop_requested
    q = EventQueue()
    q.put(Event(0.0, "/x"))
    assert [e.time for e in QueueSource(q).drain(until=1.0)] == [1.0]


def test_snapshot_is_typed_picklable_and_carries_the_latent_card(
    mono_model: Path, tmp_path: Path
) -> None:
    from instrument.engine.audio_out import ClockOutput
    from instrument.engine.loading import load_start
    from instrument.engine.worker import DecodeWorker

    model = tmp_path / "carded.ts"
    shutil.copy(mono_model, model)
    model.with_suffix(".toml").write_text("[latent]\npitch_dim = 0\npitch_scale = 2.0\n")
    start = load_start(model, "default")
    assert start.runtime is not None and start.patch is not None
    out = ClockOutput(samplerate=48000, channels=1, blocksize=256, capacity=4096, keep=False)
    worker = DecodeWorker(
        start.runtime,
        start.patch,
        out,
        prebuffer=512,
        source=QueueSource(EventQueue()),
        record_dir=None,
    )
    worker.prefill()
    snap = pickle.loads(pickle.dumps(worker.snapshot(final=True)))
    assert isinstance(snap, EngineSnapshot)
    assert snap.model.state_args() == ("carded", 48000, 64, 4)
    assert snap.model.latent.pitch_dim == 0 and snap.model.latent.pitch_ref_hz == 440.0
    assert snap.frames >= 8 and len(snap.latent) == 4
    assert snap.latency_values_ms == []

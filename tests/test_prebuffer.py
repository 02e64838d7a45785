"""The adaptive prebuffer (``--prebuffer auto``) and the ``--latency`` modes (issue 13).

The rule is tested alone (grow once per burst, shrink only with measured margin, bounds), then
in a running decode worker paced by a clock with a model that decodes slowly on demand
(``tests.modelfixtures.SlowModel``: real TorchScript doing real work), then end to end: the
live line and ``/sillage/state/prebuffer`` over OSC.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from pythonosc.udp_client import SimpleUDPClient

from instrument.engine.prebuffer import LATENCY_MODES, AdaptivePrebuffer
from tests.modelfixtures import slow_model
from tests.test_osc_e2e import StateListener, launch, wait_ready

SR = 48000


# --- the rule ---------------------------------------------------------------------------------
def test_grows_after_an_underrun_once_per_burst_up_to_the_ceiling() -> None:
    a = AdaptivePrebuffer(256, 1024, 128, burst_s=0.5)
    a.start(0.0)
    assert a.value == 256
    change = a.underrun(1.0)
    assert change is not None and (change.old, change.new) == (256, 512)
    assert "underrun" in change.reason
    assert a.underrun(1.2) is None and a.value == 512  # same burst
    assert a.underrun(2.0) is not None and a.value == 1024
    assert a.underrun(3.0) is None and a.value == 1024  # the ceiling


def test_shrinks_only_after_a_quiet_period_with_margin() -> None:
    a = AdaptivePrebuffer(256, 2048, 128, quiet_s=30.0)
    a.start(0.0)
    a.underrun(1.0)
    a.underrun(2.0)
    assert a.value == 1024
    # quiet but the ring came within 100 frames of running dry: a cut of 256 would have
    # underrun, so it stays (and a new period starts)
    a.observe(900)
    a.observe(100)
    assert a.tick(10.0) is None
    assert a.tick(33.0) is None and a.value == 1024
    # quiet with margin: one step down (×¾), and the period starts again
    a.observe(1000)
    a.observe(700)
    change = a.tick(64.0)
    assert change is not None and (change.old, change.new) == (1024, 768)
    assert "low-water mark 700" in change.reason
    assert a.tick(65.0) is None  # not before another quiet period
    # never below the floor
    for t in range(100, 1000, 31):
        a.observe(5000)
        a.tick(float(t))
    assert a.value == 256


def test_sizes_are_whole_blocks_and_refit_keeps_the_value_inside() -> None:
    a = AdaptivePrebuffer(200, 1000, 128)
    assert a.value == 256 and a.ceiling == 896
    change = a.refit(1024, 4096, 0.0)  # a model with a 1024-sample frame
    assert change is not None and a.value == 1024


def test_latency_modes_pick_block_and_prebuffer_and_n_fixes_it() -> None:
    from instrument.cli import block_and_prebuffer, build_parser

    parse = build_parser().parse_args
    low = LATENCY_MODES["low"]
    assert block_and_prebuffer(parse([])) == (low.blocksize, low.prebuffer, low.ceiling)
    safe = LATENCY_MODES["safe"]
    assert block_and_prebuffer(parse(["--latency", "safe"])) == (512, 2048, safe.ceiling)
    assert block_and_prebuffer(parse(["--prebuffer", "1024", "-b", "64"])) == (64, 1024, 0)
    with pytest.raises(SystemExit):
        parse(["--prebuffer", "lots"])


# --- a running worker with a slow model --------------------------------------------------------
def test_a_slow_decode_grows_the_prebuffer_and_a_quiet_spell_shrinks_it(tmp_path: Path) -> None:
    from instrument.engine.audio_out import ClockOutput
    from instrument.engine.runtime import ModelRuntime
    from instrument.engine.worker import DecodeWorker
    from instrument.link.events import Event, EventQueue
    from instrument.link.pipe import QueueSource
    from instrument.patch import PatchContext, load_patch

    rt = ModelRuntime(slow_model(tmp_path / "slow.ts"))
    patch = load_patch("default", context=PatchContext(rt.info.latent_size, rt.info.samplerate))
    out = ClockOutput(samplerate=SR, channels=1, blocksize=64, capacity=16384, keep=False)
    q = EventQueue()
    worker = DecodeWorker(
        rt, patch, out, prebuffer=128, prebuffer_ceiling=4096, source=QueueSource(q),
        record_dir=None,
    )  # fmt: skip
    assert worker.adaptive is not None and worker.prebuffer == 128
    worker.adaptive.quiet_s = 1.0  # the rule's own timing is tested above
    worker.loop.state.smoothing_ms = 0.0
    worker.prefill()
    out.start()
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)
        # a few slow frames (tens of ms each against 1.3 ms frames): the ring runs dry
        q.put(Event(0.0, "/sillage/latent", (0.0, 0.0, 0.0, 0.6), arrival=time.perf_counter()))
        deadline = time.monotonic() + 20
        while worker.prebuffer_changes == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        q.put(Event(0.0, "/sillage/latent", (0.0, 0.0, 0.0, 0.0), arrival=time.perf_counter()))
        assert out.underruns >= 1
        assert worker.prebuffer > 128, worker.prebuffer_note
        assert "after an underrun" in worker.prebuffer_note
        changes = worker.adaptive.changes
        # fast again once the worker plays dim 3 below the slow threshold (smoothing is off)
        deadline = time.monotonic() + 20
        while worker.loop.played_latent()[3] > 0.5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert worker.loop.played_latent()[3] <= 0.5
        n = len(changes)
        # fast again: after a quiet spell with margin it comes down a step. (On a busy machine
        # a small prebuffer with 1.3 ms frames may underrun again and grow: the rule working;
        # so what is asserted is a step down after the slow spell, with its margin.)
        deadline = time.monotonic() + 30
        while not any(c.new < c.old for c in changes[n:]) and time.monotonic() < deadline:
            time.sleep(0.1)
        down = [c for c in changes[n:] if c.new < c.old]
        assert down, changes
        assert all("low-water mark" in c.reason for c in down)
        # the budget line stays true: its prebuffer term is the prebuffer in use
        assert worker.latency_terms_ms()["prebuffer"] == pytest.approx(1e3 * worker.prebuffer / SR)
    finally:
        worker.stop_flag.set()
        thread.join(timeout=10)


# --- end to end: the live line and OSC state ---------------------------------------------------
def test_prebuffer_changes_are_printed_and_sent_as_state(tmp_path: Path) -> None:
    model = slow_model(tmp_path / "slow.ts")
    listener = StateListener()
    proc = launch(model, tmp_path / "o.wav", "--state-to", f"127.0.0.1:{listener.port}")
    lines: list[str] = []
    try:
        port = wait_ready(proc, lines)
        # on subscribe (start): the prebuffer in use, adaptive, its range or last change. (A busy machine may
        # already have grown it from the mode's 256: the model's frames are 64 samples.)
        frames, ms, adaptive, note = listener.wait_for("/sillage/state/prebuffer")
        assert adaptive == 1 and frames >= LATENCY_MODES["low"].prebuffer and note
        assert ms == pytest.approx(1e3 * frames / SR, abs=0.01)
        time.sleep(0.5)
        before = max(
            a[0] for address, a in list(listener.messages) if address.endswith("prebuffer")
        )
        client = SimpleUDPClient("127.0.0.1", port)
        client.send_message("/sillage/latent", [0.0, 0.0, 0.0, 0.6])
        grown = listener.wait_for(
            "/sillage/state/prebuffer", lambda a: "underrun" in a[3] and a[0] > before
        )
        client.send_message("/sillage/latent", [0.0, 0.0, 0.0, 0.0])
        client._sock.close()
        assert grown[2] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
        listener.close()
    text = "".join(lines) + rest
    assert f"→ {grown[0]} frames ({grown[1]:.1f} ms): after an underrun" in text, text[-3000:]
    assert " auto  latency" in text  # the live line says the prebuffer is adaptive


def test_control_to_sound_is_measured_while_nobody_plays(tmp_path: Path, mono_model: Path) -> None:
    """The latency probe: with no control event at all, the stop line has a measured figure
    (not 'not measured'), and it is no less than what the ring and a frame wait add."""
    proc = launch(mono_model, tmp_path / "o.wav", "--prebuffer", "512")
    lines: list[str] = []
    try:
        wait_ready(proc, lines)
        time.sleep(3.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    stopped = [line for line in rest.splitlines() if line.startswith("Sillage stopped")]
    assert stopped, rest[-2000:]
    assert "latency not measured" not in stopped[0], stopped[0]
    median = float(stopped[0].split("latency ")[1].split("±")[0])
    # events land anywhere in a frame, then wait behind the ring: at least a good part of the
    # 512-frame prebuffer (10.7 ms), whatever the machine
    assert median > 5.0, stopped[0]


def test_the_whole_run_latency_histogram_matches_numpy() -> None:
    """The stop line's and the soaks' figure: every measurement since start, in 50 µs bins."""
    import numpy as np

    from instrument.metrics import Histogram

    rng = np.random.default_rng(0)
    values = rng.uniform(0.004, 0.0093, size=20000)  # a frame's wait on top of the ring
    h = Histogram()
    for v in values:
        h.add(float(v))
    med, sd = h.median_sd_ms()
    assert med == pytest.approx(np.median(values) * 1e3, abs=0.05)
    assert sd == pytest.approx(np.std(values) * 1e3, rel=1e-6)
    assert h.count == values.size
    h.add(5.0)  # beyond the top bin: counted in the last one, not lost
    assert h.count == values.size + 1 and h.counts[-1] == 1


def test_the_collector_is_settled_and_timed() -> None:
    """Start-up objects are frozen out of the collector's reach (a full collection of them
    took 46 ms in the decode process), and every collection is timed."""
    import gc

    from instrument.engine.gcwatch import GCWatch, settle

    watch = GCWatch().install()
    try:
        alive = [[i] for i in range(50_000)]  # (their making may run collections itself)
        before = watch.full
        frozen = settle()
        assert frozen >= len(alive)  # what was alive is now out of reach
        assert watch.full == before + 1  # settle's own collection, seen
        gc.collect()
        assert watch.full == before + 2 and watch.max_ms > 0.0
    finally:
        watch.remove()
        gc.unfreeze()

"""The decode process: audio output, the decode worker, model/patch loading.

It owns the audio stream (rtmixer's C callback reading a ring) and the only heavy Python of
the engine, the decode loop. Nothing else in this process holds the GIL for long: OSC, MIDI
and state out live in the control process (:mod:`instrument.control.live`), which forwards
checked events through the pipe (:mod:`instrument.link.pipe`); state goes back as typed
messages (:mod:`instrument.link.messages`). ``DecodeWorker`` also runs on a thread of the control process when asked
(``LiveEngine(..., in_process=True)``), which the soak benchmark uses as its comparison.
"""

from __future__ import annotations

import contextlib
import gc
import math
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instrument.engine.gcwatch import GCWatch, settle
from instrument.engine.loading import load_start, load_swap
from instrument.engine.prebuffer import AdaptivePrebuffer, Change
from instrument.engine.priority import raise_decode_thread
from instrument.engine.runtime import ModelError, ModelRuntime
from instrument.errors import PatchError
from instrument.link.messages import (
    EngineSnapshot,
    Failed,
    ModelSummary,
    Outbound,
    Ready,
    Rejected,
    State,
    Stopped,
)
from instrument.link.pipe import EngineEnd, PipeSource
from instrument.metrics import Metrics, Reporter
from instrument.patch import Patch
from instrument.paths import RECORD_DIR

STATE_PERIOD_S = 1 / 30
START_SLACK_S = 0.05  # ring filled beyond the prebuffer before the stream starts (prefill)
LOAD_QUEUE = 4  # /sillage/model and /sillage/patch loads waiting their turn, at most


@dataclass(frozen=True)
class OutputSpec:
    """Which output the decode process opens.

    ``kind`` is "device" (rtmixer on a PortAudio device, resolved *in the decode process*, so
    only that process opens PortAudio) or "clock" (no sound card: a wall clock consumes the
    ring). ``samplerate`` None means the model's rate; ``channels`` 0 means 2 on a device that
    has them, else the model's channels. ``input_channels`` > 0 opens ``input_device`` too
    (``--input``), in one duplex stream; when that fails the output opens alone and
    ``input_note`` on the returned output says why (the instrument plays without input).
    """

    kind: str
    blocksize: int
    capacity: int
    samplerate: int | None = None
    channels: int = 0
    device: str | int | None = None
    keep_audio: bool = False
    input_device: str | int | None = None
    input_channels: int = 0

    def open(self, model_samplerate: int, model_channels: int) -> Any:
        from instrument.engine.audio_out import ClockOutput, RingOutput, find_device, find_input
        from instrument.errors import AudioInputError, OutputError

        sr = self.samplerate or model_samplerate
        if self.kind == "clock":
            clock = ClockOutput(
                samplerate=sr,
                channels=self.channels or model_channels,
                blocksize=self.blocksize or 256,
                capacity=self.capacity,
                keep=self.keep_audio,
            )
            clock.input_note = (
                "not listening: --input needs a sound device (JACK or a card), not --realtime"
                if self.input_channels
                else ""
            )
            return clock
        import sounddevice as sd

        try:
            device = find_device(self.device)
            if device is None:
                device = sd.default.device[1]
                if device is None or device < 0:
                    raise OutputError("no default output device")
            max_out = int(sd.query_devices(device)["max_output_channels"])
        except sd.PortAudioError as exc:
            raise OutputError(str(exc)) from None
        channels = self.channels or (2 if max_out >= 2 else model_channels)
        note = ""
        in_device: int | None = None
        if self.input_channels:
            try:
                in_device = find_input(self.input_device, self.input_channels)
            except AudioInputError as exc:
                note = f"not listening: {exc}; playing without input"
        out: RingOutput | None = None
        if in_device is not None:
            try:
                out = RingOutput(
                    samplerate=sr,
                    channels=channels,
                    blocksize=self.blocksize,
                    capacity=self.capacity,
                    device=device,
                    input_device=in_device,
                    input_channels=self.input_channels,
                )
                name = sd.query_devices(in_device)["name"]
                note = f"listening to input device {in_device} ({name}), {self.input_channels} ch"
            except AudioInputError as exc:
                note = f"not listening: {exc}; playing without input"
        if out is None:
            out = RingOutput(
                samplerate=sr,
                channels=channels,
                blocksize=self.blocksize,
                capacity=self.capacity,
                device=device,
            )
        out.input_note = note
        return out


@dataclass(frozen=True)
class WorkerSpec:
    """Everything the decode process needs to build its side (picklable)."""

    model: str
    patch: str
    output: OutputSpec
    prebuffer: int
    # --prebuffer auto: the prebuffer grows after underruns up to this many frames (0: fixed)
    prebuffer_ceiling: int = 0
    threads: int = 1  # 0: auto (from the decode time measured at load)
    backend: str = "auto"  # auto | torch | onnx (instrument.engine.backends)
    rt_priority: str = "auto"  # auto | off | N (instrument.engine.priority)
    latent_map: str | None = None
    switch_interval_s: float = 0.0005
    wav_out: str | None = None
    record_dir: str | None = RECORD_DIR
    nice: int = -10
    extra: dict[str, Any] = field(default_factory=dict)
    resume: Resume | None = None  # set when the control side restarts a dead decode process


@dataclass(frozen=True)
class Resume:
    """Where a restarted decode process carries on: the latent target, the gain, recording."""

    target: tuple[float, ...]
    gain_db: float
    recording: bool = False


def _raise_priority(nice: int) -> None:
    """Prefer the decode process over ordinary programs (still SCHED_OTHER: below the audio
    thread, which JACK/PortAudio run real-time). Only root or CAP_SYS_NICE may; else no-op."""
    import os

    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, 0, nice)


# ------------------------------------------------------------------------------------------
# The decode worker (runs in the decode process, or on a thread with in_process=True)
# ------------------------------------------------------------------------------------------
class DecodeWorker:
    """Keeps the ring filled to the prebuffer, one model frame at a time."""

    def __init__(
        self,
        runtime: ModelRuntime,
        patch: Patch,
        output: Any,
        *,
        prebuffer: int,
        source: Any,
        prebuffer_ceiling: int = 0,
        latent_map: Any = None,
        reporter: Reporter | None = None,
        send_out: Callable[[Any], None] | None = None,
        record_dir: str | None = RECORD_DIR,
    ) -> None:
        from instrument.engine.listen import Listener, make_encoder
        from instrument.engine.loop import DecodeLoop
        from instrument.engine.recorder import SessionRecorder

        self.output = output
        self.requested_prebuffer = prebuffer
        self.prebuffer_ceiling = prebuffer_ceiling
        self.adaptive: AdaptivePrebuffer | None = None
        self.prebuffer_note = ""  # the last change of an adaptive prebuffer, and why
        self.prebuffer_changes = 0
        capture = getattr(output, "input", None)
        # the listener's encoder is a fresh copy of the model, made here, before the first frame
        self.listener = Listener(make_encoder(runtime), capture) if capture is not None else None
        self.input_note = str(getattr(output, "input_note", ""))
        if self.listener is not None and not self.listener.active:
            from instrument.engine.listen import cannot_listen

            self.input_note = f"not listening: {cannot_listen(runtime.info.name)}"
        self.prebuffer = prebuffer
        self.metrics = Metrics()
        self.reporter = reporter or Reporter()
        self.send_out = send_out
        self.loop = DecodeLoop(
            runtime,
            patch,
            source,
            samplerate=output.samplerate,
            out_channels=output.channels,
            reporter=self.reporter,
            metrics=self.metrics,
            latent_map=latent_map,
            request_load=self._request_load,
            run_off=self._run_off,
            listener=self.listener,
        )
        if self.listener is not None and self.listener.active and patch.listen is None:
            self.input_note += (
                f"; patch {patch.name} has no [listen] table, so the mix is 0 (controllers "
                "only): send /sillage/listen/mix 1, or play --patch listen"
            )
        self.metrics.ring_capacity = output.capacity
        self.recorder = (
            SessionRecorder(record_dir, samplerate=output.samplerate, channels=output.channels)
            if record_dir
            else None
        )
        self.loop.on_tag = self._tag
        self.loop.on_record = self._record
        self._stop_after_frame = False
        self._loads: queue.Queue[tuple[str, str]] | None = None  # made on the first load
        if self.recorder is not None:
            self.loop.on_applied = self._applied
        self.stop_flag = threading.Event()
        self._take_probe: Callable[[], float] | None = getattr(source, "take_probe", None)
        self._fitted_for: Any = None
        self._fit_prebuffer()
        self._level_sq = 0.0
        self._level_n = 0
        self._level_peak = 0.0
        self.first_sound_at = math.nan
        self.priority = ""  # what the decode thread got (instrument.engine.priority)
        self.gc_watch: GCWatch | None = None  # the decode process's collector, timed

    def _tag(self, t: float, word: str) -> None:
        if self.recorder is not None:
            self.recorder.tag(t, word, self.loop.played_latent(), self.loop.info.name)

    def _record(self, on: bool) -> None:
        if self.recorder is None:
            self.reporter.reject("record", "recording is off (no --record-dir)")
        elif on:
            self._stop_after_frame = False  # "0" then "1" in one frame: it goes on
            if not self.recorder.recording:
                self.recorder.start(self.loop.t)
        else:
            # after this frame's events are in the score (a tag sent just before the stop)
            self._stop_after_frame = True

    def _applied(self, t: float, events: list[Any]) -> None:
        """The frame's events to the score, then a stop asked for in this frame. Decode worker."""
        assert self.recorder is not None
        self.recorder.events(t, events)
        if self._stop_after_frame:
            self._stop_after_frame = False
            self.recorder.stop()

    def _fit_prebuffer(self) -> None:
        """A model frame larger than the prebuffer underruns by construction (the ring runs
        dry while the next frame decodes): raise the ring target to two frames, say so and
        name the option. Called at start and after each model swap (decode worker).

        With ``--prebuffer auto`` the floor is the mode's start or one model frame, whichever
        is larger (a frame as large as the prebuffer does not underrun by construction, see
        below), and underruns grow it (:mod:`instrument.engine.prebuffer`)."""
        info = self.loop.info
        self._fitted_for = info
        frame_out = self._frame_out()
        if self.prebuffer_ceiling:
            self._fit_adaptive(frame_out)
            return
        # a frame as large as the prebuffer does not underrun by construction: the ring then
        # swings between one and two frames, and a fast backend with a real-time worker refills
        # it well within one block (measured: 0 underruns at --prebuffer 256 with ratio 256)
        want = 2 * frame_out if frame_out > self.requested_prebuffer else self.requested_prebuffer
        # writing needs room for two frames above the target (see run())
        room = self.output.capacity - 2 * frame_out
        new = max(self.requested_prebuffer, min(want, room))
        if new != self.prebuffer or frame_out > self.requested_prebuffer:
            sr = self.output.samplerate
            ms = 1e3 * new / sr
            if new >= want:
                what = f"the prebuffer is {new} frames ({ms:.0f} ms) while this model plays"
            else:
                what = f"the ring only holds a prebuffer of {new} frames ({ms:.0f} ms): expect underruns"
            self.reporter.fault(
                "prebuffer",
                f"model {info.name}: one frame is {frame_out} samples at {sr} Hz, more than "
                f"--prebuffer {self.requested_prebuffer}; {what}. Start with --prebuffer "
                f"{2 * frame_out} to choose it yourself (or use a model with a smaller ratio)",
                always=True,
            )
        self.prebuffer = new

    def _fit_adaptive(self, frame_out: int) -> None:
        floor = max(self.requested_prebuffer, frame_out)
        # writing needs room for two frames above the target (see run())
        room = self.output.capacity - 2 * frame_out
        ceiling = max(floor, min(max(self.prebuffer_ceiling, 2 * frame_out), room))
        block = max(1, self.output.blocksize)
        if self.adaptive is None:
            self.adaptive = AdaptivePrebuffer(floor, ceiling, block)
            self._note_change(None, f"auto, {self.adaptive.floor} to {self.adaptive.ceiling}")
        else:
            self._note_change(self.adaptive.refit(floor, ceiling, time.perf_counter()))
        self.prebuffer = self.adaptive.value

    def _note_change(self, change: Change | None, start: str = "") -> None:
        """An adaptive prebuffer's change, for the live line and /sillage/state/prebuffer."""
        sr = self.output.samplerate
        if start:
            assert self.adaptive is not None
            v = self.adaptive.value
            self.prebuffer_note = f"{v} frames ({1e3 * v / sr:.1f} ms), {start}"
            return
        if change is None:
            return
        self.prebuffer = change.new
        self.prebuffer_changes += 1
        self.prebuffer_note = (
            f"{change.old} → {change.new} frames ({1e3 * change.new / sr:.1f} ms): {change.reason}"
        )

    def resume(self, resume: Resume) -> None:
        """Carry on where a dead decode process was (before prefill)."""
        st = self.loop.state
        n = min(len(resume.target), st.latent_size)
        st.target[:n] = resume.target[:n]
        self.loop.trajectory.jump(st.target)
        st.gain_db = resume.gain_db
        self.loop.set_gain_now(resume.gain_db)
        if resume.recording:
            self._record(True)

    def prefill(self) -> None:
        """Fill the ring before the stream starts: the prebuffer plus ``START_SLACK_S``, which
        covers the start-up work between the stream's start and the worker's first turn
        (raising its priority, the first snapshot). Without it a 256-frame prebuffer ran dry
        there on every start; the slack drains within its own length."""
        import torch

        want = self.prebuffer + int(START_SLACK_S * self.output.samplerate)
        want = min(want, self.output.capacity - 2 * self._frame_out())
        with torch.no_grad():
            while self.output.fill() < max(want, self.prebuffer):
                self._write(self.loop.step())

    def _frame_out(self) -> int:
        info = self.loop.info
        return -(-info.ratio * self.output.samplerate // info.samplerate)

    def run(self, tick: Callable[[], None] | None = None) -> None:
        """The decode worker's loop. ``tick`` is called about every state period."""
        ModelRuntime.prepare_thread()
        out = self.output
        sr = out.samplerate
        metrics = self.metrics
        next_tick = time.perf_counter()
        adaptive = self.adaptive
        if adaptive is not None:
            adaptive.start(next_tick)
        seen_underruns = out.underruns
        settling = True
        while not self.stop_flag.is_set():
            if self.loop.info is not self._fitted_for:
                self._fit_prebuffer()  # a model swap: its frame may be bigger
            target = self.prebuffer
            out.poll(target)
            if adaptive is not None:
                if out.underruns != seen_underruns:
                    seen_underruns = out.underruns
                    self._note_change(adaptive.underrun(time.perf_counter()))
                else:
                    self._note_change(adaptive.tick(time.perf_counter()))
            metrics.underruns = out.underruns
            metrics.device_underflows = out.device_underflows
            fill = out.fill()
            metrics.ring_fill = fill
            if settling and fill < target:
                # the start-up slack (prefill) has drained: what was measured until now
                # was the start, not the instrument's latency
                settling = False
                metrics.latency_s.clear()
                metrics.latency_run = type(metrics.latency_run)()
            frame_guess = self.loop.info.ratio * sr // self.loop.info.samplerate
            if fill < target and out.space() >= 2 * frame_guess:
                frame = self.loop.step()
                self._write(frame)
                if self.loop.outbox and self.send_out is not None:
                    for msg in self.loop.outbox:
                        self.send_out(msg)
            else:
                # sleep until the fill drops below the target, then half a block more at most:
                # a whole frame (the old wait) let a one-frame prebuffer run dry first
                wait = (fill - target + out.blocksize // 2) / sr
                time.sleep(max(0.0002, min(0.005, wait)))
            if tick is not None and time.perf_counter() >= next_tick:
                next_tick += STATE_PERIOD_S
                tick()

    def _write(self, frame: np.ndarray) -> None:
        out = self.output
        fill_before = out.fill()
        if self.adaptive is not None:
            self.adaptive.observe(fill_before)
        out.write(frame)
        if self.recorder is not None and self.recorder.recording:
            self.recorder.frame(frame)
        arrivals = self.loop.arrivals
        probe = self._take_probe() if self._take_probe is not None else math.nan
        if arrivals or probe == probe:
            # DAC time of this frame's first sample: now + what is queued before it + device;
            # every event of the frame is measured (what each message waited), and a probe
            # like an event
            dac = time.perf_counter() + max(fill_before, 0) / out.samplerate + out.device_latency_s
            window, run = self.metrics.latency_s, self.metrics.latency_run
            for arrival in arrivals:
                window.add(dac - arrival)
                run.add(dac - arrival)
            if probe == probe:
                window.add(dac - probe)
                run.add(dac - probe)
        flat = frame.ravel()
        self._level_sq += float(np.dot(flat, flat))
        self._level_n += flat.size
        peak = float(np.abs(flat).max()) if flat.size else 0.0
        if peak > self._level_peak:
            self._level_peak = peak
        if peak > 1e-4 and math.isnan(self.first_sound_at):
            self.first_sound_at = time.perf_counter()

    # loading off the decode worker
    def _request_load(self, kind: str, arg: str) -> None:
        """Queue a load for the loader thread: one load at a time (a model's memory is taken
        once, not once per packet), at most ``LOAD_QUEUE`` waiting; more are refused."""
        if self._loads is None:
            self._loads = queue.Queue(maxsize=LOAD_QUEUE)
            threading.Thread(target=self._loader, name="sillage-load", daemon=True).start()
        try:
            self._loads.put_nowait((kind, arg))
        except queue.Full:
            self.reporter.reject(
                "busy",
                f"/sillage/{kind} {arg}: {LOAD_QUEUE} loads are already waiting (they run one "
                "at a time); send it again once they are in",
            )

    def _loader(self) -> None:
        assert self._loads is not None
        while True:
            kind, arg = self._loads.get()
            self._load(kind, arg)

    def _run_off(self, label: str, job: Callable[[], Any]) -> None:
        """Run a reset/fallback job of the loop on a side thread; post what it built."""

        def target() -> None:
            try:
                swap = job()
            except Exception as exc:
                self.loop.job_failed(label, exc)
                return
            if swap is not None:
                self.loop.mailbox.post(swap)

        threading.Thread(target=target, name=f"sillage-{label}", daemon=True).start()

    def _load(self, kind: str, arg: str) -> None:
        from instrument.engine.priority import normal_here

        normal_here()  # started by the decode worker: do not inherit its real-time priority
        try:
            swap = load_swap(
                kind,
                arg,
                runtime=self.loop.runtime,
                patch=self.loop.patch,
                listen=self.listener is not None,
            )
        except (ModelError, PatchError, OSError) as exc:
            self.reporter.reject(
                kind,
                f"{type(exc).__name__}: {exc} (still playing the previous {kind})",
                always=True,
            )
            return
        self.loop.mailbox.post(swap)
        # the new model's objects out of the collector's reach too (a freeze only: a collect
        # here would hold the GIL the decode worker needs)
        gc.freeze()
        name = Path(arg).stem if Path(arg).suffix in (".ts", ".toml") else arg
        print(f"sillage: loaded {kind} {name} ({arg})", flush=True)

    def latency_terms_ms(self) -> dict[str, float]:
        """The control→sound latency budget, by term (ms). Listening, ``input`` is what the
        input→sound path adds instead of ``frame_wait``: the input's device latency and block,
        and one encoder frame (plus the input resampler's delay)."""
        out = self.output
        info = self.loop.info
        terms = {
            "frame_wait": 1e3 * info.frame_s,
            "prebuffer": 1e3 * self.prebuffer / out.samplerate,
            "block": 1e3 * out.blocksize / out.samplerate,
            "device": 1e3 * out.device_latency_s,
            "model": 1e3 * info.delay_samples / info.samplerate
            if info.delay_samples is not None
            else float("nan"),
        }
        listener = self.listener
        capture = getattr(out, "input", None)
        if listener is not None and listener.active and capture is not None:
            terms["input"] = 1e3 * (
                capture.latency_s + out.blocksize / out.samplerate + listener.added_latency_s
            )
        return terms

    def snapshot(self, *, final: bool = False) -> EngineSnapshot:
        """What the control side shows and sends (plain values, picklable)."""
        m = self.metrics
        n, sq, peak = self._level_n, self._level_sq, self._level_peak
        self._level_n, self._level_sq, self._level_peak = 0, 0.0, 0.0
        z = self.loop.played_latent()
        xy = None
        if self.loop.latent_map is not None:
            try:
                x, y = self.loop.latent_map.to_xy(np.asarray(z, dtype=np.float32))
                xy = (float(x), float(y))
            except Exception:
                xy = None
        i = self.loop.info
        return EngineSnapshot(
            model=ModelSummary(
                name=i.name,
                samplerate=i.samplerate,
                ratio=i.ratio,
                latent_size=i.latent_size,
                channels=i.channels,
                delay_samples=i.delay_samples,
                latent=i.latent,
                backend=self.loop.runtime.backend_name,
                backend_note=self.loop.runtime.backend_note,
                threads=self.loop.runtime.threads,
                threads_note=self.loop.runtime.threads_note,
                path=i.path,
            ),
            patch=self.loop.patch.name,
            patch_path=str(self.loop.patch.path) if self.loop.patch.path else None,
            latent=tuple(float(v) for v in z),
            xy=xy,
            rms_db=10 * math.log10(sq / n + 1e-12) if n else None,
            peak_db=20 * math.log10(peak + 1e-12) if n else None,
            frames=m.frames,
            underruns=m.underruns,
            device_underflows=m.device_underflows,
            decode_ms=m.decode_ms(),
            latency_ms=m.latency_ms(),
            samplerate=self.output.samplerate,
            blocksize=self.output.blocksize,
            ring_fill=m.ring_fill,
            rejected=dict(self.reporter.counts),
            terms=self.latency_terms_ms(),
            bad_frames=m.bad_frames,
            decode_errors=m.decode_errors,
            model_resets=m.model_resets,
            fallbacks=m.fallbacks,
            over_budget=m.over_budget,
            prebuffer=self.prebuffer,
            prebuffer_note=self.prebuffer_note,
            prebuffer_changes=self.prebuffer_changes,
            model_path=i.path,
            recording=self.recorder is not None and self.recorder.recording,
            target=tuple(float(v) for v in self.loop.state.target),
            gain_db=float(self.loop.state.gain_db),
            first_sound_at=self.first_sound_at,
            priority=self.priority,
            latency_values_ms=(m.latency_s.values() * 1e3).tolist() if final else None,
            latency_run_ms=m.latency_run.median_sd_ms() if final else (math.nan, math.nan),
            latency_run_count=m.latency_run.count,
            input_note=self.input_note,
            input_overruns=self._input_overruns(),
            input_level_db=self.listener.level_db() if self.listener is not None else None,
            gc_full=self.gc_watch.full if self.gc_watch is not None else 0,
            gc_max_ms=self.gc_watch.max_ms if self.gc_watch is not None else 0.0,
        )

    def _input_overruns(self) -> int:
        capture = getattr(self.output, "input", None)
        n = int(capture.overruns) if capture is not None else 0
        if self.listener is not None:
            n += self.listener.skipped
        return n


def build(spec: WorkerSpec) -> tuple[ModelRuntime, Patch, Any, Any]:
    """Load the model, the patch and the map, and open the output (decode side)."""
    loaded: dict[str, Any] = {}

    def load_map() -> None:
        # in parallel with torch's import and the model load, which release the GIL often
        try:
            from mappings.latentmap import LatentMap

            loaded["map"] = LatentMap.load(spec.latent_map) if spec.latent_map else None
        except Exception as exc:
            loaded["map_error"] = exc

    map_thread = threading.Thread(target=load_map, name="sillage-map-load", daemon=True)
    map_thread.start()
    import torch

    torch.set_num_threads(max(spec.threads, 1))
    start = load_start(spec.model, spec.patch, threads=spec.threads, backend=spec.backend)
    runtime, patch = start.runtime, start.patch
    assert runtime is not None and patch is not None
    map_thread.join()
    if "map_error" in loaded:
        raise loaded["map_error"]
    output = spec.output.open(runtime.info.samplerate, runtime.info.channels)
    return runtime, patch, loaded["map"], output


def decode_process_main(spec: WorkerSpec, events_conn: Any, state_conn: Any) -> None:
    """Entry point of the decode process. Builds its side, says ready, runs until told to stop."""
    # Ctrl-C reaches the whole process group; the control process decides when to stop us
    # (it sends None down the pipe), so the decode process ignores it and never dies mid-frame.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.setswitchinterval(spec.switch_interval_s)
    if spec.nice:
        _raise_priority(spec.nice)
    send = EngineEnd(state_conn).send

    try:
        runtime, patch, latent_map, output = build(spec)
    except Exception as exc:  # ModelError, PatchError, OutputError...: the control side explains
        send(Failed(f"{type(exc).__name__}: {exc}"))
        return
    source = PipeSource(events_conn)
    reporter = Reporter(sink=lambda text: send(Rejected(text)))

    def send_out(msg: Any) -> None:
        send(Outbound(msg))

    try:
        worker = DecodeWorker(
            runtime,
            patch,
            output,
            prebuffer=spec.prebuffer,
            prebuffer_ceiling=spec.prebuffer_ceiling,
            source=source,
            latent_map=latent_map,
            reporter=reporter,
            send_out=send_out,
            record_dir=spec.record_dir,
        )
        if spec.resume is not None:
            worker.resume(spec.resume)
        worker.prefill()
        # the start-up objects (torch, the model) out of the collector's reach: one full
        # collection of them took 46 ms (instrument.engine.gcwatch)
        settle()
        worker.gc_watch = GCWatch().install()
        output.start()
        # after start: the audio thread (JACK's client thread, PortAudio's) exists to stay under
        worker.priority = raise_decode_thread(spec.rt_priority, nice=spec.nice)
    except Exception as exc:
        send(Failed(f"{type(exc).__name__}: {exc}"))
        return
    send(Ready(worker.snapshot()))

    def tick() -> None:
        if source.stop_requested:
            worker.stop_flag.set()
        send(State(worker.snapshot()))

    try:
        worker.run(tick)
    except Exception:
        send(Failed(traceback.format_exc()))
    finally:
        stats = output.close()
        if worker.recorder is not None:
            worker.recorder.close()
        snap = worker.snapshot(final=True)
        if spec.wav_out and hasattr(output, "audio"):
            from instrument.engine.offline import write_wav

            write_wav(spec.wav_out, output.audio(), output.samplerate)
        send(Stopped(snap, stats))

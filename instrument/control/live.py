"""The live engine: a decode process that owns the audio, and a control side that talks OSC.

Why two processes. The audio callback is C (rtmixer) and needs no Python, but the decode
worker does, and CPython has one GIL per process: measured here, a GIL-busy Python thread
beside the decode worker (on a loaded 2-core machine) gave 3–15 underruns per 10 s at a
21 ms prebuffer. So the decode worker lives in its own process with the audio stream and
nothing else that holds the GIL; OSC servers, MIDI callbacks, state out and anything a user
adds run in the control process and reach the worker through a pipe.

Decode process (:func:`~instrument.engine.worker.decode_process_main`): audio output (ring +
C callback), the decode loop, loading of models/patches on a side thread; sends an
:class:`~instrument.link.messages.EngineSnapshot` ~30 times a second.
Control process (:class:`LiveEngine`, this module: wiring only): OSC and MIDI inputs (check
once, forward), state sender, CLI.

``LiveEngine(..., in_process=True)`` runs the same worker on a thread instead (used by the
benchmark as the comparison, and where processes are not wanted).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from instrument.engine.worker import (  # noqa: F401  (re-exported: the CLI and benchmarks use them)
    STATE_PERIOD_S,
    DecodeWorker,
    OutputSpec,
    WorkerSpec,
    decode_process_main,
)
from instrument.errors import EngineError, PatchError
from instrument.link.events import Event, EventQueue
from instrument.link.messages import (
    EngineSnapshot,
    Failed,
    Outbound,
    Ready,
    Rejected,
    State,
    Stopped,
)
from instrument.link.pipe import EventSender, QueueSender, QueueSource
from instrument.metrics import Metrics, Reporter
from instrument.patch import Patch, PatchContext, load_patch


@dataclass(frozen=True)
class LiveConfig:
    """Engine settings, validated at start (messages state the rule)."""

    samplerate: int
    blocksize: int = 256
    prebuffer: int = 1024
    osc_host: str = "127.0.0.1"
    osc_port: int = 7770
    state_to: tuple[tuple[str, int], ...] = ()
    switch_interval_s: float = 0.0005

    def __post_init__(self) -> None:
        if self.blocksize < 0:
            raise ValueError(f"blocksize must be >= 0, got {self.blocksize}")
        if self.prebuffer < 1:
            raise ValueError(f"prebuffer must be >= 1 frame, got {self.prebuffer}")
        if not 0 <= self.osc_port < 65536:
            raise ValueError(
                f"osc port must be in 1..65535 (0: any free port), got {self.osc_port}"
            )


class LiveEngine:
    """Everything that runs while playing: ``start()``, then ``stop()``.

    Parameters
    ----------
    spec : WorkerSpec
        Model, patch and output for the decode side.
    config : LiveConfig
    in_process : bool
        Run the decode worker on a thread of this process instead of its own process.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        config: LiveConfig,
        *,
        in_process: bool = False,
        reporter: Reporter | None = None,
    ) -> None:
        from instrument.control.state_out import StateSender

        self.spec = spec
        self.config = config
        self.in_process = in_process
        self.reporter = reporter or Reporter()
        self.metrics = Metrics()
        self.snap: EngineSnapshot | None = None
        self.final: Stopped | None = None
        self.sender = StateSender(self._snapshot)
        self.sender.on_subscribe = self._hello
        for host, port in config.state_to:
            self.sender.subscribers[(host, port)] = None
        self.inputs: list[Any] = []
        self._validator: Patch | None = None
        self._proc: Any = None
        self._thread: threading.Thread | None = None
        self._worker: DecodeWorker | None = None
        self._events_conn: Any = None
        self._state_conn: Any = None
        self._receiver: threading.Thread | None = None
        self._stopped = threading.Event()
        self.queue: Any = None
        self.started_at = math.nan

    # --- start --------------------------------------------------------------------------
    def start(self, timeout_s: float = 120.0) -> LiveEngine:
        sys.setswitchinterval(self.config.switch_interval_s)
        self.started_at = time.perf_counter()
        self._load_validator(self.spec.patch)
        if self.in_process:
            self._start_thread()
        else:
            self._start_process(timeout_s)
        cfg = self.config
        from instrument.control.osc_in import OSCInput

        self.inputs.append(self._listen(cfg.osc_host, cfg.osc_port, "osc", OSCInput))
        self._open_patch_ports()
        self._open_midi()
        self.sender.start()
        return self

    def _open_midi(self) -> None:
        """MIDI callbacks are Python: they live on this (control) side and forward events."""
        from instrument.control.midi_in import open_patch_midi

        old, self.midi = getattr(self, "midi", None), None
        if old is not None:
            old.close()
        if self._validator is not None:
            self.midi = open_patch_midi(self._validator, self.queue, lambda: 0.0, log=print)

    def _load_validator(self, patch: str) -> None:
        """The control side's copy of the patch: only its pure ``validate`` is used here."""
        latent = self.snap.model.latent_size if self.snap else 8
        sr = self.snap.model.samplerate if self.snap else 48000
        self._validator = load_patch(patch, context=PatchContext(latent_size=latent, samplerate=sr))

    def _start_process(self, timeout_s: float) -> None:
        ctx = mp.get_context("spawn")  # fork after torch/threads is unsafe
        ev_recv, ev_send = ctx.Pipe(duplex=False)
        st_recv, st_send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=decode_process_main,
            args=(self.spec, ev_recv, st_send),
            name="sillage-decode",
            daemon=True,
        )
        self._proc.start()
        ev_recv.close()
        st_send.close()
        self._events_conn, self._state_conn = ev_send, st_recv
        self.queue = EventSender(ev_send, self._on_put)
        deadline = time.monotonic() + timeout_s
        while True:
            if st_recv.poll(0.1):
                try:
                    msg = st_recv.recv()
                except EOFError:
                    raise EngineError("the decode process ended before it was ready") from None
                if isinstance(msg, Ready):
                    self._apply_snapshot(msg.snapshot)
                    break
                if isinstance(msg, Failed):
                    self._proc.join(timeout=5)
                    raise EngineError(msg.text)
            elif not self._proc.is_alive():
                raise EngineError(f"the decode process exited with code {self._proc.exitcode}")
            if time.monotonic() > deadline:
                self._proc.terminate()
                raise EngineError(f"the decode process was not ready in {timeout_s:.0f} s")
        self._receiver = threading.Thread(
            target=self._receive, name="sillage-state-in", daemon=True
        )
        self._receiver.start()

    def _start_thread(self) -> None:
        from instrument.engine.worker import build

        spec = self.spec
        try:
            runtime, patch, latent_map, output = build(spec)
        except Exception as exc:
            raise EngineError(f"{type(exc).__name__}: {exc}") from None
        q = EventQueue()
        self.queue = QueueSender(q, self._on_put)
        worker = DecodeWorker(
            runtime,
            patch,
            output,
            prebuffer=spec.prebuffer,
            source=QueueSource(q),
            latent_map=latent_map,
            reporter=self.reporter,
            send_out=self.sender.outbox.put,
            record_dir=spec.record_dir,
        )
        self._worker = worker
        worker.prefill()
        output.start()
        self._apply_snapshot(worker.snapshot())
        self._thread = threading.Thread(
            target=worker.run, args=(self._tick_in_process,), name="sillage-decode", daemon=True
        )
        self._thread.start()

    def _tick_in_process(self) -> None:
        assert self._worker is not None
        self._apply_snapshot(self._worker.snapshot())

    def _listen(self, host: str, port: int, name: str, cls: Any = None) -> Any:
        if cls is None:
            from instrument.control.osc_in import OSCInput as cls
        assert self._validator is not None
        return cls(
            self.queue,
            host=host,
            port=port,
            controller=lambda: self._validator.controller,
            clock=lambda: 0.0,
            reporter=self.reporter,
            on_side=self.sender.on_side,
            name=name,
        ).start()

    def _open_patch_ports(self) -> None:
        assert self._validator is not None
        have = {inp.port for inp in self.inputs}
        for port in self._validator.controller.osc_ports():
            if port not in have:
                try:
                    self.inputs.append(self._listen(self.config.osc_host, port, "sensor"))
                except OSError as exc:
                    self.reporter.reject("port", str(exc))

    def _on_put(self, event: Event) -> None:
        """Control side sees every forwarded event: reload its validator on patch changes."""
        if event.path == "/sillage/patch" and event.args:
            name = str(event.args[0])
            threading.Thread(target=self._reload_validator, args=(name,), daemon=True).start()

    def _reload_validator(self, name: str) -> None:
        try:
            self._load_validator(name)
            self._open_patch_ports()
            self._open_midi()
        except PatchError:
            pass  # the decode side reports it

    # --- state from the decode side --------------------------------------------------------
    def _receive(self) -> None:
        conn = self._state_conn
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            if isinstance(msg, State):
                self._apply_snapshot(msg.snapshot)
            elif isinstance(msg, Outbound):
                self.sender.outbox.put(msg.message)
            elif isinstance(msg, Rejected):
                self.reporter.unsent.append(msg.text)
            elif isinstance(msg, Stopped):
                self._apply_snapshot(msg.snapshot)
                self.final = msg
                break
            elif isinstance(msg, Failed):
                print(f"sillage: decode process error: {msg.text}", file=sys.stderr, flush=True)
        self._stopped.set()

    def _apply_snapshot(self, snap: EngineSnapshot) -> None:
        old = self.snap
        self.snap = snap
        m = self.metrics
        m.frames = snap.frames
        m.underruns = snap.underruns
        m.device_underflows = snap.device_underflows
        m.ring_fill = snap.ring_fill
        if snap.rms_db is not None and snap.peak_db is not None:
            m.rms_db, m.peak_db = snap.rms_db, snap.peak_db
        if old is not None and old.model != snap.model:
            self.sender.broadcast("/sillage/state/model", snap.model.state_args())
            if snap.patch_path:
                threading.Thread(
                    target=self._reload_validator, args=(snap.patch_path,), daemon=True
                ).start()
        self.rejected_remote = snap.rejected

    # --- what the CLI and the state sender read -----------------------------------------------
    def _snap(self) -> EngineSnapshot:
        if self.snap is None:
            raise EngineError("the engine has not started; call start() first")
        return self.snap

    @property
    def model(self) -> Any:
        """The model playing (:class:`~instrument.link.messages.ModelSummary`)."""
        return self._snap().model

    @property
    def samplerate(self) -> int:
        return self._snap().samplerate

    def latency_terms_ms(self) -> dict[str, float]:
        return dict(self.snap.terms) if self.snap else {}

    def decode_ms(self) -> tuple[float, float]:
        return self.snap.decode_ms if self.snap else (math.nan, math.nan)

    def latency_ms(self) -> tuple[float, float]:
        return self.snap.latency_ms if self.snap else (math.nan, math.nan)

    def rejected(self) -> dict[str, int]:
        counts = dict(self.reporter.counts)
        for k, v in (self.snap.rejected if self.snap else {}).items():
            counts[k] = counts.get(k, 0) + v
        return counts

    def _hello(self, dest: tuple[str, int]) -> list[tuple[str, tuple[Any, ...]]]:
        return [("/sillage/state/model", self._snap().model.state_args())]

    def _snapshot(self) -> list[tuple[str, tuple[Any, ...]]]:
        s = self._snap()
        msgs: list[tuple[str, tuple[Any, ...]]] = [("/sillage/state/latent", s.latent)]
        if s.xy is not None:
            msgs.append(("/sillage/state/xy", s.xy))
        m = self.metrics
        msgs.append(("/sillage/state/level", (m.rms_db, m.peak_db)))
        msgs.append(("/sillage/state/underruns", (int(m.underruns),)))
        med, _ = self.latency_ms()
        t = self.latency_terms_ms()
        values = (
            med,
            t.get("frame_wait", math.nan),
            t.get("prebuffer", math.nan),
            t.get("block", math.nan),
            t.get("device", math.nan),
            t.get("model", math.nan),
        )
        # -1 = unknown (nothing measured yet, or no model card): Max and Pd choke on NaN
        msgs.append(
            ("/sillage/state/latency_ms", tuple(v if math.isfinite(v) else -1.0 for v in values))
        )
        msgs.append(("/sillage/state/decode_ms", self.decode_ms()))
        for text in self.reporter.take_unsent():
            msgs.append(("/sillage/state/error", (text,)))
        return msgs

    def status_line(self) -> str:
        p50, p99 = self.decode_ms()
        med, jit = self.latency_ms()
        lat = f"{med:.1f}±{jit:.1f} ms" if math.isfinite(med) else "n/a"
        m = self.metrics
        return (
            f"underruns {m.underruns} (device {m.device_underflows})  decode p50 {p50:.2f} ms "
            f"p99 {p99:.2f} ms  ring {m.ring_fill}/{self.spec.prebuffer}  latency {lat}  "
            f"level {m.rms_db:.0f} dB  rejected {sum(self.rejected().values())}"
        )

    # --- stop ---------------------------------------------------------------------------
    def stop(self, timeout_s: float = 30.0) -> dict[str, Any]:
        for inp in self.inputs:
            inp.close()
        midi = getattr(self, "midi", None)
        if midi is not None:
            midi.close()
        stats: dict[str, Any] = {}
        if self.in_process:
            worker = self._worker
            if worker is not None:
                worker.stop_flag.set()
                if self._thread is not None:
                    self._thread.join(timeout=5)
                stats = worker.output.close()
                if worker.recorder is not None:
                    worker.recorder.close()
                self._apply_snapshot(worker.snapshot(final=True))
                if self.spec.wav_out and hasattr(worker.output, "audio"):
                    from instrument.engine.offline import write_wav

                    write_wav(self.spec.wav_out, worker.output.audio(), worker.output.samplerate)
        elif self._proc is not None:
            self.queue.stop()
            self._stopped.wait(timeout_s)
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(timeout=5)
            if self.final is not None:
                stats = self.final.stats
            self._events_conn.close()
            self._state_conn.close()
        self.sender.close()
        return stats


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()

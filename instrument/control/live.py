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

The control side supervises the decode process. Its state pipe gives EOF the moment the
process dies (``kill -9`` included), and the ~30 Hz state is a heartbeat: silence on it for
``HEARTBEAT_S`` while the process lives is reported as a stall. A dead decode process is said
loudly (the live line says so instead of freezing), and restarted with the model, patch,
latent, gain and recording it had, up to ``MAX_RESTARTS`` times in ``RESTART_WINDOW_S``; if it
cannot come back, :attr:`LiveEngine.failed` says why and the CLI exits non-zero.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing as mp
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from instrument.control.osc_files import FileRules
from instrument.engine.gcwatch import settle
from instrument.engine.worker import (  # noqa: F401  (re-exported: the CLI and benchmarks use them)
    STATE_PERIOD_S,
    DecodeWorker,
    OutputSpec,
    Resume,
    WorkerSpec,
    decode_process_main,
)
from instrument.errors import EngineError, PatchError
from instrument.link.events import Event, EventQueue
from instrument.link.messages import (
    PROBE_PERIOD_S,
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

HEARTBEAT_S = 0.5  # no state from a living decode process for this long: a stall, reported
MAX_RESTARTS = 3  # restarts of a dead decode process allowed within RESTART_WINDOW_S
RESTART_WINDOW_S = 60.0


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
    allow: tuple[str, ...] | None = None  # sender hosts/networks (None: whoever reaches us)
    files: FileRules | None = None  # where /sillage/model and /sillage/patch may load from
    user_models_dir: str | None = None  # /sillage/train's versions (default models/user)
    train_map: str = "umap"  # the map /sillage/train builds: umap | pca | none

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
        self._input_rms_db = -120.0  # the input's last level, for the live line
        self.final: Stopped | None = None
        self.sender = StateSender(self._snapshot)
        self.sender.on_subscribe = self._hello
        self.sender.on_refuse = self.reporter.reject
        self.artist = self._artist_loop()
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
        self.abort = threading.Event()  # set by a signal handler: give up starting now
        self.queue: Any = None
        self.started_at = math.nan
        # supervision of the decode process
        self._stopping = False
        self.down: str | None = None  # why the decode process is down now (None: it plays)
        self.failed: str | None = None  # it died and could not come back: the CLI exits 1
        self.restarts: list[float] = []  # when each recent restart succeeded (monotonic)
        self.restart_count = 0  # restarts since start
        # counters of decode processes that died: the summary counts the whole run
        self._carried = {"frames": 0, "underruns": 0, "device_underflows": 0, "bad_frames": 0,
                         "decode_errors": 0, "fallbacks": 0, "over_budget": 0}  # fmt: skip
        self.restart_s: list[float] = []  # how long each took, death to Ready
        self._timeout_s = 120.0

    # --- start --------------------------------------------------------------------------
    def start(self, timeout_s: float = 120.0) -> LiveEngine:
        from instrument.control.osc_gate import quiet_python_osc

        sys.setswitchinterval(self.config.switch_interval_s)
        self.started_at = time.perf_counter()
        quiet_python_osc(self.reporter)
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
        for host, port in cfg.state_to:
            # --state-to destinations get the hello a /sillage/subscribe gets (the model was
            # only sent to them when it changed)
            self.sender.greet(host, port)
        if not self.in_process:
            # this process's start-up objects out of the collector's reach too: a full
            # collection here would hold incoming OSC (instrument.engine.gcwatch); in-process,
            # it was done before the decode thread started
            settle()
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
        self._timeout_s = timeout_s
        proc, ev_send, st_recv, ready = self._spawn(self.spec, timeout_s)
        self._proc, self._events_conn, self._state_conn = proc, ev_send, st_recv
        self.queue = EventSender(ev_send, self._on_put)
        self._apply_snapshot(ready.snapshot)
        self._receiver = threading.Thread(
            target=self._receive, name="sillage-state-in", daemon=True
        )
        self._receiver.start()
        threading.Thread(target=self._probe_loop, name="sillage-probe", daemon=True).start()

    def _probe_loop(self) -> None:
        """Control → sound is measured even while nobody plays: a no-op probe through the event
        pipe about every PROBE_PERIOD_S (link.messages.Probe). The gaps are random so that
        probes land anywhere in a frame, as a performer's events do (a timer in step with the
        decode worker would measure one phase of its cycle only)."""
        rng = random.Random(0)
        while not self._stopping:
            time.sleep(PROBE_PERIOD_S * rng.uniform(0.5, 1.5))
            if self.down is None and not self._stopping:
                self.queue.probe()

    def _spawn(self, spec: WorkerSpec, timeout_s: float) -> tuple[Any, Any, Any, Ready]:
        """Start a decode process and wait for its Ready; raise EngineError if it fails."""
        ctx = mp.get_context("spawn")  # fork after torch/threads is unsafe
        ev_recv, ev_send = ctx.Pipe(duplex=False)
        st_recv, st_send = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=decode_process_main,
            args=(spec, ev_recv, st_send),
            name="sillage-decode",
            daemon=True,
        )
        with _sigint_ignored():
            proc.start()
        ev_recv.close()
        st_send.close()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if st_recv.poll(0.1):
                    try:
                        msg = st_recv.recv()
                    except EOFError:
                        raise EngineError("the decode process ended before it was ready") from None
                    if isinstance(msg, Ready):
                        return proc, ev_send, st_recv, msg
                    if isinstance(msg, Failed):
                        proc.join(timeout=5)
                        raise EngineError(msg.text)
                    if isinstance(msg, Rejected):
                        self.reporter.unsent.append(msg.text)
                elif not proc.is_alive():
                    raise EngineError(f"the decode process exited with code {proc.exitcode}")
                if time.monotonic() > deadline:
                    raise EngineError(f"the decode process was not ready in {timeout_s:.0f} s")
                if self.abort.is_set():
                    raise EngineError("stopped before the decode process was ready")
        except BaseException:
            if proc.is_alive():
                proc.terminate()
            proc.join(timeout=5)
            ev_send.close()
            st_recv.close()
            raise

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
            prebuffer_ceiling=spec.prebuffer_ceiling,
            source=QueueSource(q),
            latent_map=latent_map,
            reporter=self.reporter,
            send_out=self.sender.outbox.put,
            record_dir=spec.record_dir,
        )
        self._worker = worker
        worker.prefill()
        settle()
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
        from instrument.control.osc_gate import Gate

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
            on_side=self._on_side,
            name=name,
            gate=Gate(allow=self.config.allow),
            files=self.config.files if name == "osc" else None,
        ).start()

    def _artist_loop(self) -> Any:
        from pathlib import Path

        from instrument.control.artist import ArtistLoop
        from instrument.paths import DATASET_DIR, RECORD_DIR, USER_MODELS_DIR
        from mappings.latentmap import find_map

        def map_for(model: str) -> str | None:
            if self.spec.latent_map and model == self.spec.model:
                return str(self.spec.latent_map)
            found = find_map(model)
            return str(found) if found is not None else None

        record_dir = Path(self.spec.record_dir or RECORD_DIR)
        return ArtistLoop(
            lambda event: self.queue.put(event),
            self.sender.broadcast,
            lambda text: self.reporter.reject("artist", text, always=True),
            record_dir=record_dir,
            dataset_dir=record_dir.parent / DATASET_DIR,
            user_dir=Path(self.config.user_models_dir or USER_MODELS_DIR),
            map_for=map_for,
            regions=lambda: dict(self.sender.regions),
            map_method=self.config.train_map,
        )

    def _on_side(self, path: str, args: tuple[Any, ...], client: tuple[str, int]) -> None:
        """Side messages: the artist's loop, or the state sender (subscribe, labels)."""
        if path in self.artist.HANDLED:
            self.artist.on_side(path, args)
        else:
            self.sender.on_side(path, args, client)

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
        snap = self.snap
        if event.path == "/sillage/tag" and event.args and snap is not None and snap.xy:
            # Where the tagged moment sits on the map: the played latent's position now.
            self.sender.broadcast("/sillage/state/tag", (str(event.args[0]), *snap.xy))
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
        """State from the decode side; the supervisor: notices a dead or stalled process."""
        while True:
            lost = self._receive_until_lost()
            if lost is None or self._stopping:
                break
            if not self._restart(lost):
                break
        self._stopped.set()

    def _receive_until_lost(self) -> str | None:
        """Apply state until the decode process stops (None) or is lost (why)."""
        conn, proc = self._state_conn, self._proc
        last = time.monotonic()
        stalled = False
        while True:
            try:
                ready = conn.poll(HEARTBEAT_S / 2)
                msg = conn.recv() if ready else None
            except (EOFError, OSError):
                return None if self._stopping else self._death_text(proc)
            if msg is None:
                if not proc.is_alive():
                    return None if self._stopping else self._death_text(proc)
                if not stalled and time.monotonic() - last > HEARTBEAT_S and not self._stopping:
                    stalled = True
                    self._shout(
                        f"the decode process has sent nothing for {HEARTBEAT_S:.1f} s "
                        "(stalled: the machine is overloaded or the model hangs)"
                    )
                continue
            last = time.monotonic()
            if stalled:
                stalled = False
                self._shout("the decode process answers again")
            if isinstance(msg, State):
                self._apply_snapshot(msg.snapshot)
            elif isinstance(msg, Outbound):
                self.sender.outbox.put(msg.message)
            elif isinstance(msg, Rejected):
                self.reporter.unsent.append(msg.text)
            elif isinstance(msg, Stopped):
                self._apply_snapshot(msg.snapshot)
                self.final = msg
                if self._stopping:
                    return None
                return "the decode process stopped on its own"
            elif isinstance(msg, Failed):
                print(f"sillage: decode process error: {msg.text}", file=sys.stderr, flush=True)

    @staticmethod
    def _death_text(proc: Any) -> str:
        proc.join(timeout=1)
        code = proc.exitcode
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exit code {code}"
        return f"the decode process died ({how})"

    def _shout(self, text: str) -> None:
        """A message that must be seen: stderr and /sillage/state/error."""
        line = f"sillage: {text}"
        print(line, file=sys.stderr, flush=True)
        self.reporter.unsent.append(line)

    def _restart(self, why: str) -> bool:
        """Restart the dead decode process where it was; False when it cannot come back."""
        died_at = time.monotonic()
        snap = self.snap
        spec = self.spec
        if snap is not None:
            spec = dataclasses.replace(
                spec,
                model=snap.model_path or spec.model,
                patch=snap.patch_path or spec.patch,
                resume=Resume(snap.target, snap.gain_db, snap.recording),
            )
        self.restarts = [t for t in self.restarts if died_at - t < RESTART_WINDOW_S]
        name = snap.model.name if snap else spec.model
        patch = snap.patch if snap else spec.patch
        if len(self.restarts) >= MAX_RESTARTS:
            self._give_up(
                f"{why}, and it already restarted {len(self.restarts)} times in the last "
                f"{RESTART_WINDOW_S:.0f} s"
            )
            return False
        self.down = f"{why}: NO SOUND, restarting"
        self._shout(f"{why.upper()}: NO SOUND. Restarting it with model {name}, patch {patch}")
        try:
            proc, ev_send, st_recv, ready = self._spawn(spec, self._timeout_s)
        except EngineError as exc:
            self._give_up(f"{why}, and the restart failed: {exc}")
            return False
        if self._stopping:
            proc.terminate()
            return False
        if snap is not None:  # what the dead process counted stays in the totals
            for key in self._carried:
                self._carried[key] += getattr(snap, key)
        old_events, old_state = self._events_conn, self._state_conn
        self._proc, self._events_conn, self._state_conn = proc, ev_send, st_recv
        self.queue.rebind(ev_send)
        for conn in (old_events, old_state):
            conn.close()
        self._apply_snapshot(ready.snapshot)
        took = time.monotonic() - died_at
        self.restarts.append(time.monotonic())
        self.restart_count += 1
        self.restart_s.append(took)
        self.down = None
        self._shout(f"the decode process is back after {took:.1f} s (sound again)")
        return True

    def _give_up(self, text: str) -> None:
        self.failed = f"{text}; see the messages above, fix the cause and start again"
        self.down = self.failed
        self._shout(self.failed)

    def _apply_snapshot(self, snap: EngineSnapshot) -> None:
        old = self.snap
        self.snap = snap
        m = self.metrics
        c = self._carried
        m.frames = snap.frames + c["frames"]
        m.underruns = snap.underruns + c["underruns"]
        m.device_underflows = snap.device_underflows + c["device_underflows"]
        m.ring_fill = snap.ring_fill
        if snap.rms_db is not None and snap.peak_db is not None:
            m.rms_db, m.peak_db = snap.rms_db, snap.peak_db
        if old is not None and snap.prebuffer_changes > old.prebuffer_changes:
            # not an error: the live line's own news (stdout), and state for Max/Pd/the map
            print(f"Sillage: prebuffer {snap.prebuffer_note}", flush=True)
            self.sender.broadcast("/sillage/state/prebuffer", self._prebuffer_args(snap))
        if snap.model.path and (old is None or old.model.path != snap.model.path):
            self.artist.on_model(snap.model.path)
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
        snap = self._snap()
        return [
            ("/sillage/state/model", snap.model.state_args()),
            ("/sillage/state/prebuffer", self._prebuffer_args(snap)),
        ]

    @staticmethod
    def _prebuffer_args(snap: EngineSnapshot) -> tuple[int, float, int, str]:
        """/sillage/state/prebuffer: frames, ms, adaptive (1/0), why (the last change)."""
        ms = 1e3 * snap.prebuffer / snap.samplerate if snap.samplerate else -1.0
        return (
            int(snap.prebuffer),
            round(ms, 2),
            int(bool(snap.prebuffer_note)),
            snap.prebuffer_note,
        )

    def _snapshot(self) -> list[tuple[str, tuple[Any, ...]]]:
        if self.down is not None:
            # nothing is playing: no stale latent or level that looks alive, only the reports
            # (and a level of silence, for meters)
            errors = [("/sillage/state/error", (text,)) for text in self.reporter.take_unsent()]
            return [("/sillage/state/level", (-120.0, -120.0)), *errors]
        s = self._snap()
        msgs: list[tuple[str, tuple[Any, ...]]] = [("/sillage/state/latent", s.latent)]
        if s.xy is not None:
            msgs.append(("/sillage/state/xy", s.xy))
        m = self.metrics
        msgs.append(("/sillage/state/level", (m.rms_db, m.peak_db)))
        if s.input_level_db is not None:
            rms, peak = s.input_level_db
            msgs.append(("/sillage/state/input", (rms, peak, int(s.input_overruns))))
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
        if self.down is not None:
            return f"DECODE PROCESS DOWN: {self.down}"
        p50, p99 = self.decode_ms()
        med, jit = self.latency_ms()
        lat = f"{med:.1f}±{jit:.1f} ms" if math.isfinite(med) else "n/a"
        m = self.metrics
        snap = self.snap
        prebuffer = snap.prebuffer if snap and snap.prebuffer else self.spec.prebuffer
        listening = snap is not None and "input" in snap.terms
        overruns = ""
        if listening and snap is not None:
            level = snap.input_level_db
            if level is not None:
                self._input_rms_db = level[0]
            overruns = f"  input {self._input_rms_db:.0f} dB, overruns {snap.input_overruns}"
        backend = snap.model.backend if snap else "?"
        auto = " auto" if snap is not None and snap.prebuffer_note else ""
        line = (
            f"underruns {m.underruns} (device {m.device_underflows}){overruns}  "
            f"decode ({backend}) p50 {p50:.2f} ms "
            f"p99 {p99:.2f} ms  ring {m.ring_fill}/{prebuffer}{auto}  latency {lat}  "
            f"level {m.rms_db:.0f} dB  rejected {sum(self.rejected().values())}"
        )
        return line + self.fault_text()

    def fault_text(self) -> str:
        """``  bad frames 3 (...)  over budget 2  restarts 1``, or "" when all is well."""
        snap = self.snap
        c = self._carried
        bad = c["bad_frames"] + (snap.bad_frames if snap else 0)
        errors = c["decode_errors"] + (snap.decode_errors if snap else 0)
        fallbacks = c["fallbacks"] + (snap.fallbacks if snap else 0)
        over = c["over_budget"] + (snap.over_budget if snap else 0)
        parts = []
        if bad:
            parts.append(
                f"bad frames {bad} (NaN/inf {bad - errors}, decode errors {errors}, "
                f"fallbacks {fallbacks})"
            )
        if over:
            parts.append(f"over budget {over}")
        if self.restart_count:
            parts.append(f"decode process restarts {self.restart_count}")
        return "".join(f"  {p}" for p in parts)

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
            self._stopping = True
            self.queue.stop()
            self._stopped.wait(timeout_s if self._proc.is_alive() else 2.0)
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(timeout=5)
            if self.final is not None:
                stats = self.final.stats
            self._events_conn.close()
            self._state_conn.close()
        self.artist.close()
        self.sender.close()
        return stats


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Start a child with SIGINT ignored (main thread only): it keeps it ignored from its
    first instruction, so a Ctrl-C to the process group during its start-up (torch's import
    takes seconds) cannot kill it with a traceback; the control process decides when it stops."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()

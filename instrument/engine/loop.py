"""The decode loop: one model frame at a time, the same live and offline.

Per frame at audio time t (decode worker):
  1. drain events with time ≤ t; each goes to its handler, found in a map built from
     ``protocol.py``'s table (route ``engine``), or to the patch's controller (route
     ``patch``); then apply a model/patch load waiting in the one-slot mailbox;
  2. listening (``--input``, ``--input-file``): one frame of input is encoded, its
     descriptors go to the patch (``/audio/descriptors``);
     the controller gives the target latent; scale around the centre;
  3. the trajectory smooths, clamps and NaN-guards it; listening, the input's latent
     (transformed: bias, scale, freeze, noise, transpose) is mixed in
     (:mod:`instrument.engine.listen`);
  4. the model decodes one frame; the frame is checked (NaN, inf, an exception) *before* any
     stateful DSP; DC blocker, gain (ramped) and the safety limiter follow;
  5. the frame (resampled to the device rate when needed) is returned to the driver, which
     writes it into the ring buffer (live) or the file (offline).

A bad frame (NaN/inf out of the model, or ``decode`` raised) never silences the show: it is
replaced by a short fade of the last good sample to silence, the filter states are reset, the
model's streaming state is reset (a fresh copy made off the decode worker), and it is counted
(``bad_frames``) and reported (``/sillage/state/error``, rate-limited). The first good frame
after it fades in. A model that stays bad for ``FALLBACK_AFTER_S`` is replaced by the previous
model (or the default model), and the report says so and names the fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from math import isfinite
from pathlib import Path
from time import perf_counter
from typing import Any, Protocol

import numpy as np

from instrument.engine.listen import AUDIO_ADDRESS, Listener, cannot_listen
from instrument.engine.loading import Mailbox, Swap, load_patch_for, load_swap
from instrument.engine.output_safety import DCBlocker, SafetyLimiter, db_to_gain, finite
from instrument.engine.resample import Resampler
from instrument.engine.runtime import ModelRuntime
from instrument.engine.trajectory import Trajectory
from instrument.errors import ModelError, OSCInputError, PatchError
from instrument.link.events import Event
from instrument.metrics import Metrics, Reporter
from instrument.patch import Patch
from instrument.patch.contract import ControlState, Outgoing
from instrument.paths import DEFAULT_MODEL
from instrument.protocol import INPUTS, PREFIX, accept

PANIC_FADE_OUT_S = 0.05
PANIC_FADE_IN_S = 0.3
BAD_FADE_S = 0.003  # a bad frame: the last good sample fades to silence over this
RECOVER_FADE_S = 0.01  # the first good frame after bad ones fades in over this
FALLBACK_AFTER_S = 0.25  # bad frames in a row for this long: back to the previous model
RESET_FIRST_S = 0.05  # a model still bad after a reset is reset again after this, doubling
RESET_RETRY_S = 1.0  # ... up to this (a reset loads a fresh copy: not free for big models)

RunOff = Callable[[str, Callable[[], Swap | None]], None]


class EventSource(Protocol):
    def drain(self, until: float) -> list[Event]: ...


class LatentMapLike(Protocol):
    latent_size: int

    def to_xy(self, z: np.ndarray) -> tuple[float, float]: ...

    def to_latent(self, x: float, y: float) -> np.ndarray: ...


def _loud_point(latent_map: Any, latent_size: int, default: np.ndarray) -> np.ndarray:
    loud = getattr(latent_map, "loudness_db", None)
    if loud is None or len(loud) == 0 or latent_map.latent_size != latent_size:
        return default
    loud = np.asarray(loud, dtype=float)
    finite = np.isfinite(loud)
    if not finite.any():
        return default
    keep = np.flatnonzero(finite & (loud >= np.percentile(loud[finite], 90)))
    xy = np.asarray(latent_map.xy)[keep]
    best = keep[int(np.argmin(np.sum((xy - xy.mean(axis=0)) ** 2, axis=1)))]
    return np.asarray(latent_map.latents[best], dtype=float)


def _describe_exception(exc: BaseException) -> str:
    """``RuntimeError: what it said``, also for TorchScript's ``torch.jit.Error``, whose text
    is a TorchScript traceback ending in ``builtins.RuntimeError: what it said``."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    name, sep, rest = last.partition(": ")
    if sep and name.startswith("builtins."):
        return f"{name.removeprefix('builtins.')}: {rest}"
    return f"{type(exc).__name__}: {last}" if last else type(exc).__name__


class DecodeLoop:
    """Events → latent → audio, one model frame per :meth:`step`.

    Parameters
    ----------
    runtime : ModelRuntime
    patch : Patch
    source : EventSource
        ``EventQueue`` live, ``ScoreSource`` offline.
    samplerate : int
        Output (device) rate; frames are resampled from the model rate when they differ.
    request_load : callable, optional
        Called with ``(kind, arg)`` for ``/sillage/model`` and ``/sillage/patch``. Live, it hands
        the loading to a side thread that posts the result in :attr:`mailbox`; offline (None)
        the loop loads in line with :func:`~instrument.engine.loading.load_swap`, so renders
        stay deterministic.
    run_off : callable, optional
        ``run_off(label, job)`` runs ``job`` (which returns a :class:`Swap` or None) off the
        decode worker and posts its result in :attr:`mailbox`; used to reset or replace a
        model that gives bad frames. Offline (None) the job runs in line.
    """

    _voice_rts: list[ModelRuntime]  # keyboard voices 1..n-1 (see _voice_streams)

    def __init__(
        self,
        runtime: ModelRuntime,
        patch: Patch,
        source: EventSource,
        *,
        samplerate: int | None = None,
        out_channels: int | None = None,
        reporter: Reporter | None = None,
        metrics: Metrics | None = None,
        latent_map: LatentMapLike | None = None,
        request_load: Callable[[str, str], None] | None = None,
        run_off: RunOff | None = None,
        on_tag: Callable[[float, str], None] | None = None,
        on_record: Callable[[bool], None] | None = None,
        on_applied: Callable[[float, list[Event]], None] | None = None,
        listener: Listener | None = None,
    ) -> None:
        self.source = source
        self.listener = listener
        self.reporter = reporter or Reporter()
        self.metrics = metrics or Metrics()
        self.latent_map = latent_map
        self.request_load = request_load
        self.run_off = run_off
        self.mailbox: Mailbox[Swap] = Mailbox()
        self.on_tag = on_tag
        self.on_record = on_record
        self.on_applied = on_applied
        self.samplerate = samplerate or runtime.info.samplerate
        self.out_channels = out_channels or runtime.info.channels
        self.outbox: list[Outgoing] = []
        self.frame_index = 0
        self.t = 0.0  # audio time of the next frame's start, seconds at the output rate
        self._gain = 1.0
        self._gain_db = math.nan  # the dB value _gain_lin was computed from (NaN: none yet)
        self._gain_lin = 1.0
        self._panic: tuple[int, int] | None = None  # (frames into panic, fade-out frames)
        self._fade_in_left = 0
        self._fade_in_total = 0
        self.last_arrival = math.nan  # the earliest event of the frame (NaN: none)
        self.arrivals: list[float] = []  # every live event's arrival in the frame
        # fault isolation (see the module docstring)
        self.bad_streak = 0  # bad frames in a row
        self._reset_pending = False
        self._fallback_pending = False
        self._last_reset_t = -math.inf
        self._reset_interval = 0.0
        self._previous: ModelRuntime | None = None  # released: bytes only, fresh() on demand
        self._xfade: tuple[ModelRuntime, DCBlocker, Resampler | None] | None = None
        self._tail: np.ndarray | None = None  # last good sample per channel (after DC)
        self._fade_in_recover = False  # start a ramp-in at the next good frame
        self._ramp: tuple[int, int] | None = None  # (frames into the ramp-in, its frames)
        self._handlers = self._handler_map()
        self._install(runtime, patch)
        self.state.gain_db = float(patch.engine.get("gain_db", 0.0))
        self._gain = db_to_gain(self.state.gain_db)
        self._start_at(patch.engine.get("start"))
        self._played = self.trajectory.z
        if listener is not None:
            if not listener.active:
                self.reporter.reject("listen", cannot_listen(runtime.info.name), always=True)
            elif listener.transform is not None:
                listener.transform.jump_mix()  # the patch's mix from the first frame

    def set_gain_now(self, gain_db: float) -> None:
        """Set the gain without a ramp (a restarted engine carries on at the same level)."""
        self.state.gain_db = gain_db
        self._gain = db_to_gain(gain_db)

    def _start_at(self, start: Any) -> None:
        """Where the instrument starts: the centre, a latent list, or ``"loud"`` (an audible
        corpus point from the map, so the first sound is not the silence between sounds)."""
        st = self.state
        z = st.centre.copy()
        if isinstance(start, list):
            v = np.asarray(start, dtype=float)[: st.latent_size]
            z[: v.size] = v
        elif start == "loud" and self.latent_map is not None:
            z = _loud_point(self.latent_map, st.latent_size, z)
        st.target = z
        self.trajectory.jump(z)

    # --- set-up and swaps ---------------------------------------------------------------
    def _install(
        self, runtime: ModelRuntime, patch: Patch, voice_runtimes: list[ModelRuntime] | None = None
    ) -> None:
        info = runtime.info
        self.runtime = runtime
        self.info = info
        self._frame_s = info.frame_s  # a property of ModelInfo: read once, not per frame
        old = getattr(self, "state", None)
        self.state = ControlState(info.latent_size)
        self.trajectory = getattr(self, "trajectory", None) or Trajectory(
            info.latent_size, info.frame_s
        )
        self.trajectory.set_frame(info.frame_s)
        if self.trajectory.latent_size != info.latent_size:
            self.trajectory.resize(info.latent_size)
        if old is not None:
            n = min(old.latent_size, info.latent_size)
            self.state.target[:n] = old.target[:n]
            self.state.centre[:n] = old.centre[:n]
            self.state.scale, self.state.gain_db = old.scale, old.gain_db
            self.state.smoothing_ms = old.smoothing_ms
        self.limiter = getattr(self, "limiter", None) or SafetyLimiter(samplerate=self.samplerate)
        old_info = getattr(self, "_dc_for", None)
        if old_info != (info.samplerate, info.channels):
            # the filter's coefficient depends on the rate: a new model at another rate gets its own
            self.dc_blocker = DCBlocker(samplerate=info.samplerate, channels=info.channels)
            self._dc_for = (info.samplerate, info.channels)
        self.resampler = (
            Resampler(info.samplerate, self.samplerate, info.channels)
            if info.samplerate != self.samplerate
            else None
        )
        self._apply_patch(patch, voice_runtimes)

    def _apply_patch(self, patch: Patch, voice_runtimes: list[ModelRuntime] | None = None) -> None:
        self.patch = patch
        self.controller = patch.controller
        self._configure_listener(patch)
        if hasattr(self.controller, "on_reject"):
            # events a mapping cannot use (garbage MIDI, wrong sensor frames) are reported too
            self.controller.on_reject = self.reporter.reject
        notice = self.controller.notice
        if notice:
            self.reporter.reject("no_pitch", f"patch {patch.name!r}: {notice}", always=True)
        self._voice_streams(self.controller.n_voices, voice_runtimes)
        eng = patch.engine
        if "smoothing_ms" in eng:
            self.state.smoothing_ms = eng["smoothing_ms"]
        if "scale" in eng:
            self.state.scale = float(eng["scale"])
        if "centre" in eng:
            c = np.asarray(eng["centre"], dtype=float)[: self.info.latent_size]
            self.state.centre[: c.size] = c

    def _configure_listener(self, patch: Patch) -> None:
        listener = getattr(self, "listener", None)
        if listener is None:
            return
        sources = getattr(self.controller, "sources", ())
        listener.want_descriptors = any(getattr(s, "kind", "") == "audio" for s in sources)
        if patch.listen is not None and listener.transform is not None:
            try:
                listener.transform.configure(patch.listen)
            except ValueError as exc:
                self.reporter.reject("listen", f"patch {patch.name} [listen]: {exc}", always=True)

    def swap(self, swap: Swap) -> None:
        """Apply a loaded model/patch at this frame boundary (decode worker)."""
        if swap.reason == "reset":
            self._reset_pending = False
            rt = swap.runtime
            if rt is not None and self.bad_streak and rt.path == self.runtime.path:
                self.runtime = rt  # same model, fresh streaming state; nothing else changes
                voices = swap.voice_runtimes or []
                if len(voices) == len(self._voice_rts):
                    self._voice_rts = voices  # the keyboard's voices start clean too
                self.metrics.model_resets += 1
            return  # else the model recovered (or was swapped) meanwhile: drop the copy
        if swap.latent_map is not None:
            self.latent_map = swap.latent_map
        if swap.runtime is not None:
            old_runtime, old_dc, old_rs = self.runtime, self.dc_blocker, self.resampler
            same = (old_runtime.info.samplerate, old_runtime.info.channels) == (
                swap.runtime.info.samplerate,
                swap.runtime.info.channels,
            )
            if self.listener is not None:
                self.listener.install(swap.encoder)
                if swap.encoder is None:
                    self.reporter.reject(
                        "listen", cannot_listen(swap.runtime.info.name), always=True
                    )
            self._install(swap.runtime, swap.patch or self.patch, swap.voice_runtimes)
            if swap.reason == "fallback":
                self._fallback_pending = False
                self._previous = None  # the broken one is not worth coming back to
                old_runtime.release()
                self._fade_in_recover = True
                self.metrics.fallbacks += 1
                return
            if self._previous is not None:
                self._previous.release()
            self._previous = old_runtime
            if self.bad_streak:
                self._fade_in_recover = True  # the old model was silent: nothing to cross from
                old_runtime.release()
            else:
                # same rate: the new model continues on the old DC state; the old one plays
                # one more frame on a copy of it, through its own resampler, and is crossfaded
                if same:
                    self.dc_blocker = old_dc.copy()
                else:
                    self._fade_in_recover = True
                self._xfade = (old_runtime, old_dc, old_rs)
        elif swap.patch is not None:
            self._apply_patch(swap.patch, swap.voice_runtimes)

    def _voice_streams(self, n: int, ready: list[ModelRuntime] | None) -> None:
        """Streams for keyboard voices 1..n-1 (voice 0 plays on :attr:`runtime`): the ones a
        loader made off this thread (``ready``), else fresh copies made here (set-up)."""
        ready = [r for r in (ready or []) if r.info is self.info][: max(n - 1, 0)]
        while len(ready) < n - 1:
            ready.append(self.runtime.fresh())
        self._voice_rts = ready
        self._voice_traj = [Trajectory(self.info.latent_size, self.info.frame_s) for _ in ready]
        for traj in self._voice_traj:
            traj.jump(self.state.target)

    # --- events -------------------------------------------------------------------------
    def _handler_map(self) -> dict[str, Callable[[int | None, tuple[Any, ...]], None]]:
        """``{table path: handler}`` for every input the table routes to the engine, the way
        python-osc's ``Dispatcher.map`` builds its routing. A table entry without a handler
        fails here, at set-up, not when the message first arrives."""
        handlers = {}
        for entry in INPUTS:
            if entry.route != "engine":
                continue
            handler = getattr(self, f"_on_{entry.key}", None)
            if handler is None:
                raise TypeError(f"{entry.path} is routed to the engine but has no _on_{entry.key}")
            handlers[entry.path] = handler
        return handlers

    def _handle(self, event: Event) -> None:
        route, path, index, args = event.route, event.path, event.index, event.args
        if route is None:
            # not checked where it entered (scores, in-process callers): checked here, once
            try:
                route, path, index, args = accept(event.address, event.args)
            except OSCInputError as exc:
                self.reporter.reject(exc.kind, str(exc))
                return
        if route == "patch":
            try:
                self.controller.on_event(event, self.state)
            except Exception as exc:  # a mapping bug must not stop the sound
                self.reporter.reject("mapping", f"{event.address}: {type(exc).__name__}: {exc}")
            return
        if route == "engine":
            assert path is not None
            self._handlers[path](index, args)
        # route "side" (subscribe, labels): answered by the control process; no sound changes

    def _on_latent_i(self, index: int | None, args: tuple[Any, ...]) -> None:
        st = self.state
        assert index is not None
        if index >= st.latent_size:
            self.reporter.reject(
                "range",
                f"{PREFIX}/latent/{index}: this model has {st.latent_size} latent dimensions (0..{st.latent_size - 1})",
            )
            return
        st.target[index] = args[0]

    def _on_latent(self, index: int | None, args: tuple[Any, ...]) -> None:
        n = min(len(args), self.state.latent_size)
        self.state.target[:n] = args[:n]

    def _on_centre(self, index: int | None, args: tuple[Any, ...]) -> None:
        n = min(len(args), self.state.latent_size)
        self.state.centre[:n] = args[:n]

    def _on_xy(self, index: int | None, args: tuple[Any, ...]) -> None:
        st = self.state
        if self.latent_map is None:
            self.reporter.reject(
                "no_map",
                "/sillage/xy needs a map: start with --map MAP.npz (or a model with its .map.npz)",
            )
            return
        z = self.latent_map.to_latent(args[0], args[1])
        n = min(len(z), st.latent_size)
        timbre = self.info.latent.timbre_dims
        if timbre:
            # The map is of timbre (the card names those dimensions): a drag leaves the pitch
            # and loudness being played where the keyboard, a sensor or a fader put them.
            dims = [d for d in timbre if d < n]
            st.target[dims] = z[dims]
        else:
            st.target[:n] = z[:n]
        st.xy = (args[0], args[1])

    def _on_scale(self, index: int | None, args: tuple[Any, ...]) -> None:
        self.state.scale = args[0]

    def _on_smoothing_ms(self, index: int | None, args: tuple[Any, ...]) -> None:
        self.state.smoothing_ms = args[0]

    def _on_gain_db(self, index: int | None, args: tuple[Any, ...]) -> None:
        self.state.gain_db = args[0]

    def _on_panic(self, index: int | None, args: tuple[Any, ...]) -> None:
        self._panic = (0, max(1, round(PANIC_FADE_OUT_S / self.info.frame_s)))
        if self.bad_streak:
            self._last_reset_t = -math.inf  # panic resets a bad model now, not after a wait

    def _on_model(self, index: int | None, args: tuple[Any, ...]) -> None:
        self._load("model", args[0])

    def _on_patch(self, index: int | None, args: tuple[Any, ...]) -> None:
        self._load("patch", args[0])

    def _on_tag(self, index: int | None, args: tuple[Any, ...]) -> None:
        if self.on_tag is not None:
            self.on_tag(self.t, args[0])

    def _on_record(self, index: int | None, args: tuple[Any, ...]) -> None:
        if self.on_record is not None:
            self.on_record(bool(args[0]))

    # --- listen ------------------------------------------------------------------------
    def _transform(self, what: str, index: int | None = None) -> Any:
        """The listener's transform, or None after saying why it cannot take ``what``."""
        listener = self.listener
        if listener is None or listener.transform is None or not listener.active:
            why = (
                "no audio input: start with --input DEVICE[:CHANNELS] (`-l` lists devices) "
                "or --input-file IN.wav"
                if listener is None
                else cannot_listen(self.info.name)
            )
            self.reporter.reject("listen", f"{PREFIX}/listen/{what}: {why}")
            return None
        if index is not None and index >= self.state.latent_size:
            n = self.state.latent_size
            self.reporter.reject(
                "range",
                f"{PREFIX}/listen/{what}/{index}: this model has {n} latent dimensions (0..{n - 1})",
            )
            return None
        return listener.transform

    def _on_listen_mix(self, index: int | None, args: tuple[Any, ...]) -> None:
        if (t := self._transform("mix")) is not None:
            t.set_mix(args[0])

    def _on_listen_mix_i(self, index: int | None, args: tuple[Any, ...]) -> None:
        if (t := self._transform("mix", index)) is not None:
            t.set_mix(args[0], index)

    def _on_listen_bias(self, index: int | None, args: tuple[Any, ...]) -> None:
        if (t := self._transform("bias")) is not None:
            t.set_bias(np.asarray(args, dtype=float))

    def _on_listen_bias_i(self, index: int | None, args: tuple[Any, ...]) -> None:
        if (t := self._transform("bias", index)) is not None:
            t.set_bias(args[0], index)

    def _on_listen_scale(self, index: int | None, args: tuple[Any, ...]) -> None:
        if (t := self._transform("scale")) is not None:
            t.set_scale(np.asarray(args, dtype=float))

    def _on_listen_scale_i(self, index: int | None, args: tuple[Any, ...]) -> None:
        if (t := self._transform("scale", index)) is not None:
            t.set_scale(args[0], index)

    def _on_listen_freeze(self, index: int | None, args: tuple[Any, ...]) -> None:
        if (t := self._transform("freeze")) is not None:
            t.set_freeze(bool(args[0]))

    def _on_listen_freeze_i(self, index: int | None, args: tuple[Any, ...]) -> None:
        if (t := self._transform("freeze", index)) is not None:
            t.set_freeze(args[0] >= 0.5, index)

    def _on_listen_noise(self, index: int | None, args: tuple[Any, ...]) -> None:
        if (t := self._transform("noise")) is not None:
            t.set_noise(args[0])

    def _on_listen_noise_i(self, index: int | None, args: tuple[Any, ...]) -> None:
        if (t := self._transform("noise", index)) is not None:
            t.set_noise(args[0], index)

    def _on_listen_transpose(self, index: int | None, args: tuple[Any, ...]) -> None:
        if (t := self._transform("transpose")) is not None:
            try:
                t.set_transpose(args[0])
            except ValueError as exc:
                self.reporter.reject("listen", f"{PREFIX}/listen/transpose: {exc}")

    def _load(self, kind: str, arg: str) -> None:
        if self.request_load is not None:
            self.request_load(kind, arg)
            return
        try:
            self.swap(
                load_swap(
                    kind,
                    arg,
                    runtime=self.runtime,
                    patch=self.patch,
                    listen=self.listener is not None,
                )
            )
        except (ModelError, PatchError) as exc:
            self.reporter.reject(kind, str(exc))

    # --- the frame ----------------------------------------------------------------------
    def step(self) -> np.ndarray:
        """Compute one model frame. Runs on the decode worker.

        Returns
        -------
        ndarray, shape (n_samples, out_channels), float32
            ``ratio`` samples at the model rate, or about that many after resampling.
        """
        events = self.source.drain(self.t)
        arrival = math.nan
        arrivals = self.arrivals
        if arrivals:
            arrivals.clear()
        for event in events:
            self._handle(event)
            a = event.arrival
            if a == a:  # not NaN (offline events carry none)
                arrivals.append(a)
                if not (arrival <= a):
                    arrival = a
        loaded = self.mailbox.take()
        if loaded is not None:
            self.swap(loaded)
        self.last_arrival = arrival
        if events and self.on_applied is not None:
            self.on_applied(self.t, events)
        st = self.state
        st.t = self.t
        listener = self.listener
        if listener is not None:
            listener.step(self.info.ratio)
            if listener.want_descriptors and listener.active:
                try:
                    self.controller.on_event(
                        Event(self.t, AUDIO_ADDRESS, listener.descriptor_args()), st
                    )
                except Exception as exc:  # a mapping bug must not stop the sound
                    self.reporter.reject("mapping", f"{AUDIO_ADDRESS}: {type(exc).__name__}: {exc}")
        try:
            target = np.asarray(self.controller.target(self.t, st), dtype=float)
        except Exception as exc:
            self.reporter.reject("mapping", f"{self.controller.name}: {type(exc).__name__}: {exc}")
            target = st.target
        if target.shape != (st.latent_size,):
            self.reporter.reject(
                "mapping",
                f"{self.controller.name} returned shape {target.shape}, expected ({st.latent_size},)",
            )
            target = st.target
        raw = target
        if st.scale != 1.0:
            target = st.centre + st.scale * (target - st.centre)
            fixed = self.controller.fixed_dims()
            if fixed:
                target[fixed] = raw[fixed]  # pitch and loudness are absolute: not scaled
        rejected_before = self.trajectory.rejected
        z = self.trajectory.step(target, st.smoothing_ms)
        if self.trajectory.rejected != rejected_before:
            self.reporter.reject("nan", "the target latent had NaN/inf; held the last good latent")
        if listener is not None and listener.active:
            t = listener.transform
            bad_before = t.rejected if t is not None else 0
            z = listener.mix(z)
            if t is not None and t.rejected != bad_before:
                self.reporter.reject(
                    "nan", "the encoded input had NaN/inf; held its last good latent"
                )
        self._played = z
        if st.gain_db != self._gain_db:  # 10 ** (dB / 20) only when the gain moved
            self._gain_db = st.gain_db
            self._gain_lin = db_to_gain(st.gain_db)
        gain_from, gain_to = self._gain, self._gain_lin
        if self._panic is not None or self._fade_in_left > 0:
            gain_from, gain_to = self._panic_gains(gain_from, gain_to)

        metrics = self.metrics
        t0 = perf_counter()
        fault = ""
        try:
            audio = self.runtime.decode_frame(z)
            if self._voice_rts:
                audio = self._mix_voices(audio)
            if not isfinite(audio.sum()):  # output_safety.finite, inline
                fault = "nan"
        except Exception as exc:  # one raise must not end the decode process
            audio = None
            fault = _describe_exception(exc)
        decode_s = perf_counter() - t0
        metrics.decode_s.add(decode_s)
        if decode_s > self._frame_s:
            metrics.over_budget += 1

        if fault or audio is None:
            frame = self._bad_frame(fault)
        else:
            if self.bad_streak:
                self._recovered()
            frame = self.dc_blocker.process(audio.T)
            if self._fade_in_recover:
                self._fade_in_recover = False
                self._ramp = (0, max(1, round(RECOVER_FADE_S / self.info.frame_s)))
            if self._ramp is not None:
                self._ramp_in(frame)
            self._tail = frame[-1].copy()
        n = frame.shape[0]
        if gain_from == gain_to:
            if gain_to != 1.0:
                frame *= gain_to
        else:
            frame *= (
                np.linspace(gain_from, gain_to, n, endpoint=False, dtype=np.float32)[:, None]
                if n > 1
                else gain_to
            )
        self._gain = gain_to if self._panic is None else self._gain
        frame = self.limiter.process(frame)
        if self.resampler is not None:
            frame = self.resampler(frame)
        if self.out_channels != frame.shape[1]:
            frame = self._match_channels(frame)
        if self._xfade is not None:
            frame = self._crossfade(frame, z, gain_to)
        self.outbox = self.controller.outbox()
        self.frame_index += 1
        metrics.frames += 1
        self.t += self._frame_s
        return frame

    def _mix_voices(self, audio: np.ndarray) -> np.ndarray:
        """Decode keyboard voices 1..n-1 on their own streams and add them to voice 0's
        frame. Idle voices are not decoded (their streams wait). Decode worker."""
        rows = self.controller.voice_targets()
        if rows is None:
            return audio
        st = self.state
        fixed = self.controller.fixed_dims()
        mixed = audio.copy()
        for k, (rt, traj) in enumerate(zip(self._voice_rts, self._voice_traj, strict=True)):
            row = rows[k + 1]
            if st.scale != 1.0:
                scaled = st.centre + st.scale * (row - st.centre)
                scaled[fixed] = row[fixed]
                row = scaled
            z = traj.step(row, st.smoothing_ms)
            if self.controller.voice_active(k + 1):
                mixed += rt.decode_frame(z)
        return mixed

    def _panic_gains(self, gain_from: float, gain_to: float) -> tuple[float, float]:
        """Panic: fade out, send the latent home, reset the patch, fade back in."""
        if self._panic is not None:
            k, total = self._panic
            g0 = gain_from * (1.0 - k / total)
            g1 = gain_from * (1.0 - (k + 1) / total)
            if k + 1 >= total:
                self._panic = None
                st = self.state
                st.target = st.centre.copy()
                self.trajectory.jump(st.centre)
                self.dc_blocker.reset()  # nothing is heard now: every filter starts clean
                self.limiter.reset()
                try:
                    self.controller.reset(st)
                except Exception as exc:
                    self.reporter.reject("mapping", f"reset: {type(exc).__name__}: {exc}")
                self._fade_in_total = max(1, round(PANIC_FADE_IN_S / self.info.frame_s))
                self._fade_in_left = self._fade_in_total
                self._gain = 0.0
                return g0, 0.0
            self._panic = (k + 1, total)
            return g0, max(g1, 0.0)
        if self._fade_in_left > 0:
            done = self._fade_in_total - self._fade_in_left
            g0 = gain_to * done / self._fade_in_total
            g1 = gain_to * (done + 1) / self._fade_in_total
            self._fade_in_left -= 1
            return g0, g1
        return gain_from, gain_to

    def _ramp_in(self, frame: np.ndarray) -> None:
        """Fade in over ``RECOVER_FADE_S`` (several frames when they are short), in place."""
        assert self._ramp is not None
        k, total = self._ramp
        frame *= np.linspace(k / total, (k + 1) / total, frame.shape[0], endpoint=False,
                             dtype=np.float32)[:, None]  # fmt: skip
        self._ramp = (k + 1, total) if k + 1 < total else None

    def _crossfade(self, frame: np.ndarray, z: np.ndarray, gain: float) -> np.ndarray:
        """Mix one last frame of the old model into the new one's first, at the output rate.

        Both go through their own DC blocker and resampler, so models of different sample
        rates (or channels) crossfade too. Then the old model is released (its module freed,
        its bytes kept to fall back to). Decode worker.
        """
        assert self._xfade is not None
        old, old_dc, old_rs = self._xfade
        self._xfade = None
        same_rate = old.info.samplerate == self.info.samplerate
        try:
            z_old = np.zeros(old.info.latent_size, dtype=np.float32)
            k = min(old.info.latent_size, z.shape[0])
            z_old[:k] = z[:k]
            prev_audio = old.decode_frame(z_old)
            if not finite(prev_audio):
                return frame
            prev = old_dc.process(prev_audio.T) * np.float32(gain)
            ceiling = self.limiter.ceiling
            np.clip(prev, -ceiling, ceiling, out=prev)
            if old_rs is not None:
                prev = old_rs(prev)
            if prev.shape[1] != self.out_channels:
                prev = self._match_channels(prev)
        except Exception:
            return frame  # the old model failing now must not cost the new one's frame
        finally:
            old.release()
        if not same_rate:
            # the new model's resampler starts empty (its first frames come out short) and
            # its first frame ramps in (``_ramp``): the old frame fades out under it
            n = max(prev.shape[0], frame.shape[0])
            mixed = np.zeros((n, frame.shape[1]), dtype=np.float32)
            mixed[: frame.shape[0]] = frame
            mixed[: prev.shape[0]] += prev * np.linspace(1.0, 0.0, prev.shape[0],
                                                         dtype=np.float32)[:, None]  # fmt: skip
            return mixed
        m = min(prev.shape[0], frame.shape[0])
        if m == 0:
            return frame
        w = np.linspace(0.0, 1.0, m, dtype=np.float32)[:, None]
        mixed = frame.copy()
        mixed[:m] = prev[:m] * (1.0 - w) + frame[:m] * w
        return mixed

    # --- faults ---------------------------------------------------------------------------
    def _bad_frame(self, fault: str) -> np.ndarray:
        """A frame to play instead of a bad one: the last good sample fading to silence.

        Resets the filter states, asks for a fresh copy of the model (its streaming state may
        hold NaN now), and after ``FALLBACK_AFTER_S`` of bad frames for the previous model.
        Decode worker.
        """
        info = self.info
        self.bad_streak += 1
        m = self.metrics
        m.bad_frames += 1
        if fault != "nan":
            m.decode_errors += 1
        frame = np.zeros((info.ratio, info.channels), dtype=np.float32)
        tail = self._tail
        if tail is not None and tail.shape[0] == info.channels:
            k = min(info.ratio, max(1, round(BAD_FADE_S * info.samplerate)))
            frame[:k] = tail * np.linspace(1.0, 0.0, k, dtype=np.float32)[:, None]
        self._tail = None
        self.dc_blocker.reset()
        self.limiter.reset()
        self._fade_in_recover = True
        what = "put out NaN/inf" if fault == "nan" else f"decode raised {fault}"
        self.reporter.fault(
            "bad_frame",
            f"model {info.name}: {what} at {self.t:.2f} s; frame replaced by silence and the "
            f"model's state reset ({m.bad_frames} bad frames so far)",
        )
        stays_bad = self.bad_streak * info.frame_s >= FALLBACK_AFTER_S
        if stays_bad and not self._fallback_pending and self._fall_back(fault):
            return frame
        if not self._reset_pending and self.t - self._last_reset_t >= self._reset_interval:
            self._reset_model()
        return frame

    def _recovered(self) -> None:
        self.reporter.fault(
            "recovered",
            f"model {self.info.name} sounds again after {self.bad_streak} bad frame(s)",
        )
        self.bad_streak = 0
        self._reset_interval = 0.0

    def _reset_model(self) -> None:
        """A fresh copy of the playing model (new streaming state), made off the worker."""
        self._reset_pending = True
        self._last_reset_t = self.t
        self._reset_interval = min(RESET_RETRY_S, max(RESET_FIRST_S, 2 * self._reset_interval))
        runtime, n_voices = self.runtime, len(self._voice_rts)

        def job() -> Swap:
            voices = [runtime.fresh() for _ in range(n_voices)]
            return Swap(runtime=runtime.fresh(), voice_runtimes=voices, reason="reset")

        self._off("reset", job)

    def _fall_back(self, fault: str) -> bool:
        """Replace a model that stays bad by the previous one (or the default); False when
        there is none to go to."""
        info = self.info
        previous = self._previous
        target: str | None = None
        if previous is not None:
            target = previous.info.name
        elif DEFAULT_MODEL.is_file() and Path(info.path).resolve() != DEFAULT_MODEL.resolve():
            target = f"the default model ({DEFAULT_MODEL.name})"
        seconds = self.bad_streak * info.frame_s
        fix = (
            "check its decode for NaN/inf or exceptions (or export it again: "
            "`python -m models.export`, `rave export --streaming`), then load it again with "
            "/sillage/model PATH"
        )
        if target is None:
            self.reporter.fault(
                "model_failed",
                f"model {info.name} gave only bad frames for {seconds:.2f} s (last: {fault}) and "
                f"there is no previous model to fall back to: silence until it recovers; {fix} "
                "or load another",
            )
            return False
        self._fallback_pending = True
        self.reporter.fault(
            "model_failed",
            f"model {info.name} gave only bad frames for {seconds:.2f} s (last: {fault}); "
            f"falling back to {target}; {fix}",
            always=True,
        )
        patch_path = self.patch.path or "default"
        listening = self.listener is not None

        def job() -> Swap:
            from instrument.engine.runtime import ModelRuntime

            rt = previous.fresh() if previous is not None else ModelRuntime(DEFAULT_MODEL)
            patch = load_patch_for(patch_path, rt)
            voices = [rt.fresh() for _ in range(patch.controller.n_voices - 1)]
            encoder = rt.fresh_encoder() if listening and rt.info.has_encode else None
            return Swap(
                runtime=rt, patch=patch, voice_runtimes=voices, reason="fallback", encoder=encoder
            )

        self._off("fallback", job)
        return True

    def _off(self, label: str, job: Callable[[], Swap | None]) -> None:
        if self.run_off is not None:
            self.run_off(label, job)
            return
        try:  # offline: in line, so renders stay deterministic
            swap = job()
        except Exception as exc:
            self.job_failed(label, exc)
            return
        if swap is not None:
            self.swap(swap)

    def job_failed(self, label: str, exc: BaseException) -> None:
        """A reset or fallback job raised (called from its thread or in line)."""
        if label == "reset":
            self._reset_pending = False
        elif label == "fallback":
            self._fallback_pending = False
        self.reporter.fault(
            label, f"could not {label} the model: {type(exc).__name__}: {exc}", always=True
        )

    def _match_channels(self, frame: np.ndarray) -> np.ndarray:
        if frame.shape[1] == 1:
            return np.repeat(frame, self.out_channels, axis=1)
        if self.out_channels == 1:
            return frame.mean(axis=1, keepdims=True)
        out = np.zeros((frame.shape[0], self.out_channels), dtype=np.float32)
        m = min(self.out_channels, frame.shape[1])
        out[:, :m] = frame[:, :m]
        return out

    def played_latent(self) -> np.ndarray:
        """The latent decoded last (the controllers' and the input's, mixed)."""
        return self._played

    def describe(self) -> dict[str, Any]:
        i = self.info
        return {
            "model": i.name,
            "samplerate": i.samplerate,
            "ratio": i.ratio,
            "latent_size": i.latent_size,
            "channels": i.channels,
            "patch": self.patch.name,
        }

"""The decode loop: one model frame at a time, the same live and offline.

Per frame at audio time t (decode worker):
  1. drain events with time ≤ t; each goes to its handler, found in a map built from
     ``protocol.py``'s table (route ``engine``), or to the patch's controller (route
     ``patch``); then apply a model/patch load waiting in the one-slot mailbox;
  2. the controller gives the target latent; scale around the centre;
  3. the trajectory smooths, clamps and NaN-guards it;
  4. the model decodes one frame; gain (ramped) and the safety limiter follow;
  5. the frame (resampled to the device rate when needed) is returned to the driver, which
     writes it into the ring buffer (live) or the file (offline).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from instrument.engine.loading import Mailbox, Swap, load_swap
from instrument.engine.output_safety import DCBlocker, SafetyLimiter, db_to_gain
from instrument.engine.resample import Resampler
from instrument.engine.runtime import ModelRuntime
from instrument.engine.trajectory import Trajectory
from instrument.errors import ModelError, OSCInputError, PatchError
from instrument.link.events import Event
from instrument.metrics import Metrics, Reporter
from instrument.patch import Patch
from instrument.patch.contract import ControlState, Outgoing
from instrument.protocol import INPUTS, PREFIX, accept

PANIC_FADE_OUT_S = 0.05
PANIC_FADE_IN_S = 0.3


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
    """

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
        on_tag: Callable[[float, str], None] | None = None,
        on_record: Callable[[bool], None] | None = None,
        on_applied: Callable[[float, list[Event]], None] | None = None,
    ) -> None:
        self.source = source
        self.reporter = reporter or Reporter()
        self.metrics = metrics or Metrics()
        self.latent_map = latent_map
        self.request_load = request_load
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
        self._panic: tuple[int, int] | None = None  # (frames into panic, fade-out frames)
        self._fade_in_left = 0
        self._fade_in_total = 0
        self.last_arrival = math.nan
        self._handlers = self._handler_map()
        self._install(runtime, patch)
        self.state.gain_db = float(patch.engine.get("gain_db", 0.0))
        self._gain = db_to_gain(self.state.gain_db)
        self._start_at(patch.engine.get("start"))

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
        old = getattr(self, "state", None)
        self.state = ControlState(info.latent_size)
        self.trajectory = getattr(self, "trajectory", None) or Trajectory(
            info.latent_size, info.frame_s
        )
        self.trajectory.frame_s = info.frame_s
        if self.trajectory.latent_size != info.latent_size:
            self.trajectory.resize(info.latent_size)
        if old is not None:
            n = min(old.latent_size, info.latent_size)
            self.state.target[:n] = old.target[:n]
            self.state.centre[:n] = old.centre[:n]
            self.state.scale, self.state.gain_db = old.scale, old.gain_db
            self.state.smoothing_ms = old.smoothing_ms
        self.limiter = getattr(self, "limiter", None) or SafetyLimiter(samplerate=self.samplerate)
        if getattr(self, "dc_blocker", None) is None:
            self.dc_blocker = DCBlocker(samplerate=info.samplerate, channels=info.channels)
        self.resampler = (
            Resampler(info.samplerate, self.samplerate, info.channels)
            if info.samplerate != self.samplerate
            else None
        )
        self._apply_patch(patch, voice_runtimes)

    def _apply_patch(self, patch: Patch, voice_runtimes: list[ModelRuntime] | None = None) -> None:
        self.patch = patch
        self.controller = patch.controller
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

    def swap(self, swap: Swap) -> None:
        """Apply a loaded model/patch at this frame boundary (decode worker)."""
        if swap.latent_map is not None:
            self.latent_map = swap.latent_map
        if swap.runtime is not None:
            old_runtime = self.runtime
            self._install(swap.runtime, swap.patch or self.patch, swap.voice_runtimes)
            self._crossfade_from = old_runtime
        elif swap.patch is not None:
            self._apply_patch(swap.patch, swap.voice_runtimes)

    _crossfade_from: ModelRuntime | None = None

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

    def _load(self, kind: str, arg: str) -> None:
        if self.request_load is not None:
            self.request_load(kind, arg)
            return
        try:
            self.swap(load_swap(kind, arg, runtime=self.runtime, patch=self.patch))
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
        for event in events:
            self._handle(event)
            if not math.isnan(event.arrival) and not (arrival <= event.arrival):
                arrival = event.arrival
        loaded = self.mailbox.take()
        if loaded is not None:
            self.swap(loaded)
        self.last_arrival = arrival
        if events and self.on_applied is not None:
            self.on_applied(self.t, events)
        st = self.state
        st.t = self.t
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
        gain_from, gain_to = self._gain, db_to_gain(st.gain_db)
        gain_from, gain_to = self._panic_gains(gain_from, gain_to)

        t0 = time.perf_counter()
        audio = self.runtime.decode_frame(z)
        if self._voice_rts:
            audio = self._mix_voices(audio)
        if self._crossfade_from is not None:
            audio = self._crossfade(audio, z.astype(np.float32)[:, None])
        self.metrics.decode_s.add(time.perf_counter() - t0)

        frame = self.dc_blocker.process(audio.T)
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
        self.outbox = self.controller.outbox()
        self.frame_index += 1
        self.metrics.frames += 1
        self.t += self.info.frame_s
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

    def _crossfade(self, audio: np.ndarray, z32: np.ndarray) -> np.ndarray:
        old = self._crossfade_from
        self._crossfade_from = None
        assert old is not None
        if old.info.samplerate != self.info.samplerate or old.info.channels != self.info.channels:
            return audio  # the gain fade-in below covers it
        z_old = np.zeros((old.info.latent_size, 1), dtype=np.float32)
        n = min(old.info.latent_size, z32.shape[0])
        z_old[:n] = z32[:n]
        prev = old.decode(z_old)
        m = min(prev.shape[1], audio.shape[1])
        w = np.linspace(0.0, 1.0, m, dtype=np.float32)
        mixed = audio.copy()
        mixed[:, :m] = prev[:, :m] * (1.0 - w) + audio[:, :m] * w
        return mixed

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
        return self.trajectory.z

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

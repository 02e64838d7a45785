"""Audio out (and in): python-rtmixer's C callback plays a ring buffer, and with ``--input``
records the input into another; no Python on the audio thread.

Measured on a 2-core machine with two GIL-bound Python threads: a sounddevice Python callback
at block 256 missed a third of its blocks; rtmixer's C callback missed none. rtmixer is honest
about its ring buffer: when the ring runs short it plays what is there and *drops* the
playback action. :meth:`RingOutput.poll` notices that, counts an underrun and re-arms once the
decode worker has refilled the prebuffer.

:class:`ClockOutput` is the same contract without a sound card: a wall clock consumes the ring
(used by ``--offline ... --realtime`` and by tests of the live control path).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from instrument.engine import rtmixer_access
from instrument.errors import AudioInputError, OutputError


def find_device(spec: str | int | None, *, kind: str = "output") -> int | None:
    """A device index from a number or a name substring (device or host API name).

    Raises
    ------
    OutputError
        No match, or an ambiguous name (listing every match).
    """
    import sounddevice as sd

    if spec is None:
        return None
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        index = int(spec)
        devices = sd.query_devices()
        if not 0 <= index < len(devices):
            raise OutputError(f"no device {index}; `python run_instrument.py -l` lists them")
        return index
    words = str(spec).lower().split()
    apis = sd.query_hostapis()
    matches = []
    for i, dev in enumerate(sd.query_devices()):
        if dev[f"max_{kind}_channels"] <= 0:
            continue
        text = f"{dev['name']}, {apis[dev['hostapi']]['name']}".lower()
        if all(w in text for w in words):
            matches.append((i, f"{dev['name']}, {apis[dev['hostapi']]['name']}"))
    if not matches:
        raise OutputError(
            f"no {kind} device matches {spec!r}; `python run_instrument.py -l` lists them"
        )
    if len(matches) > 1:
        listing = "; ".join(f"{i}: {name}" for i, name in matches)
        raise OutputError(f"{spec!r} matches several {kind} devices ({listing}); give the number")
    return matches[0][0]


def find_input(spec: str | int | None, channels: int) -> int:
    """The input device for ``--input``: a number or a name substring (None: the default
    input), checked to have ``channels`` input channels.

    Raises
    ------
    AudioInputError
        No such device, an ambiguous name, or too few input channels; the message names `-l`.
    """
    import sounddevice as sd

    try:
        device = find_device(spec, kind="input")
        if device is None:
            device = sd.default.device[0]
            if device is None or device < 0:
                raise AudioInputError(
                    "no default input device; `python run_instrument.py -l` lists devices, "
                    "pick one with --input N"
                )
        info = sd.query_devices(device)
    except (OutputError, sd.PortAudioError) as exc:
        raise AudioInputError(str(exc).replace("output device", "input device")) from None
    have = int(info["max_input_channels"])
    if have < channels:
        raise AudioInputError(
            f"input device {device} ({info['name']}) has {have} input channel(s), --input asked "
            f"for {channels}; `python run_instrument.py -l` lists devices and their channels"
        )
    return int(device)


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


class RingOutput:
    """An rtmixer Mixer playing a ring buffer the decode worker fills.

    Parameters
    ----------
    samplerate : int
    channels : int
    blocksize : int
        PortAudio block (0 lets the host choose).
    capacity : int
        Ring size in frames (rounded up to a power of two, as PortAudio's ring requires).
    device : int or None
    """

    def __init__(
        self,
        *,
        samplerate: int,
        channels: int,
        blocksize: int,
        capacity: int,
        device: int | None = None,
        latency: Any = "low",
        input_device: int | None = None,
        input_channels: int = 0,
    ) -> None:
        import rtmixer
        import sounddevice as sd

        rtmixer_access.check(rtmixer)
        self._rtmixer = rtmixer
        self.input: RingInput | None = None
        self.input_note = ""
        try:
            if input_channels:
                # one duplex stream: input and output share the callback, so they never drift
                self.mixer = rtmixer.MixerAndRecorder(
                    device=(input_device, device),
                    channels=(input_channels, channels),
                    blocksize=blocksize,
                    samplerate=samplerate,
                    latency=latency,
                )
            else:
                self.mixer = rtmixer.Mixer(
                    device=device,
                    channels=channels,
                    blocksize=blocksize,
                    samplerate=samplerate,
                    latency=latency,
                )
        except (sd.PortAudioError, ValueError) as exc:
            if input_channels:
                raise AudioInputError(
                    f"cannot open input device {input_device} with {input_channels} channel(s) "
                    f"together with the output ({exc}); `python run_instrument.py -l` lists "
                    "devices (input and output must share a host API, e.g. both JACK)"
                ) from None
            raise OutputError(
                f"cannot open the audio output ({exc}); check --device/--samplerate "
                "(`python run_instrument.py -l` lists devices), start JACK, or render with --offline"
            ) from None
        self.samplerate = int(self.mixer.samplerate)
        self.channels = channels
        self.blocksize = blocksize
        self.ring = rtmixer.RingBuffer(4 * channels, _next_pow2(capacity))
        self._rb = rtmixer_access.ring_struct(self.ring)
        self._result_rb = rtmixer_access.result_queue_struct(self.mixer)
        self.capacity = self.ring.write_available
        self.underruns = 0
        self._played_before = 0  # frames played by dropped actions
        self.written = 0
        self._action: Any = None
        lat = self.mixer.latency
        self.device_latency_s = float(lat[1] if isinstance(lat, tuple) else lat)
        if input_channels:
            self.input = RingInput(
                self.mixer,
                channels=input_channels,
                capacity=capacity,
                samplerate=self.samplerate,
                latency_s=float(lat[0]) if isinstance(lat, tuple) else 0.0,
            )
        self.device_underflow_times: list[float] = []  # wall-clock (epoch) times of flagged seconds
        self.device_underflows = 0
        self._stats_action: Any = None
        self._blocks = 0
        self._stats_due = 0.0
        self._t0 = 0.0

    def start(self) -> None:
        self.mixer.start()
        self._t0 = time.perf_counter()
        self._stats_due = self._t0 + 1.0
        self._arm()
        if self.input is not None:
            self.input.arm()

    def _arm(self) -> None:
        self._action = self.mixer.play_ringbuffer(self.ring)

    # Per-frame bookkeeping reads the ring's C struct (no C call, no GIL hand-off): see
    # rtmixer_access for why and for the private fields involved.
    def _ring_fill(self) -> int:
        rb = self._rb
        return (rb.writeIndex - rb.readIndex) & rb.bigMask

    def played(self) -> int:
        """Frames the callback has taken from the ring so far."""
        action = self._action
        return self._played_before + (int(action.done_frames) if action is not None else 0)

    def fill(self) -> int:
        return self._ring_fill()

    def space(self) -> int:
        return self.capacity - self._ring_fill()

    def _drain_finished(self) -> None:
        """Let rtmixer collect finished actions, but only when its result queue has any."""
        rq = self._result_rb
        if rq.writeIndex != rq.readIndex:
            rtmixer_access.drain_results(self.mixer)

    def _active(self, action: Any) -> bool:
        return rtmixer_access.is_active(self.mixer, action)

    def _poll_stats(self) -> None:
        """Fetch PortAudio's own underflow flags once a second (rtmixer resets them atomically)."""
        act = self._stats_action
        if act is not None and not self._active(act):
            n = int(act.stats.output_underflows)
            self._blocks += int(act.stats.blocks)
            if n:
                self.device_underflows += n
                self.device_underflow_times.append(round(time.time(), 2))
            self._stats_action = None
        elif act is None:
            now = time.perf_counter()
            if now >= self._stats_due:
                self._stats_due = now + 1.0
                self._stats_action = self.mixer.fetch_and_reset_stats()

    def poll(self, prebuffer: int) -> None:
        """Detect a dropped playback action (ring ran dry); re-arm once refilled. Decode worker."""
        self._drain_finished()
        self._poll_stats()
        if self.input is not None:
            self.input.poll()
        action = self._action
        if action is None:
            if self.fill() >= prebuffer:
                self._arm()
            return
        if not self._active(action):
            self.underruns += 1
            self._played_before += int(action.done_frames)
            self._action = None
            if self.fill() >= prebuffer:
                self._arm()

    def write(self, frame: np.ndarray) -> int:
        """Copy a frame (n, channels) float32 into the ring. Decode worker."""
        n = self.ring.write(np.ascontiguousarray(frame, dtype=np.float32))
        self.written += n
        return n

    def close(self) -> dict[str, Any]:
        stats: dict[str, Any] = {}
        try:
            self.mixer.stop()
            s = self.mixer.stats
            self.device_underflows += int(s.output_underflows)
            self._blocks += int(s.blocks)
            stats = {
                "blocks": self._blocks,
                "device_underflows": self.device_underflows,
                "device_underflow_at": self.device_underflow_times,
            }
        except Exception:
            pass
        self.mixer.close()
        return stats


class RingInput:
    """The capture side of the duplex stream: rtmixer's C callback records the input into a
    ring; the decode worker takes what arrived once per frame (:meth:`pull`).

    An overrun (the ring was full when read, or rtmixer dropped the record action) is counted
    in :attr:`overruns`; the action is re-armed at once.
    """

    def __init__(
        self, mixer: Any, *, channels: int, capacity: int, samplerate: int, latency_s: float
    ) -> None:
        import rtmixer

        self.mixer = mixer
        self.channels = channels
        self.samplerate = samplerate
        self.latency_s = latency_s
        self.ring = rtmixer.RingBuffer(4 * channels, _next_pow2(capacity))
        self._rb = rtmixer_access.ring_struct(self.ring)
        self.capacity = self.ring.write_available
        self._buf = np.zeros((self.capacity, channels), dtype=np.float32)
        self.overruns = 0
        self.received = 0
        self._action: Any = None

    def arm(self) -> None:
        self._action = self.mixer.record_ringbuffer(self.ring)

    def poll(self) -> None:
        """Re-arm a record action rtmixer dropped (counted). Decode worker."""
        action = self._action
        if action is not None and not rtmixer_access.is_active(self.mixer, action):
            self.overruns += 1
            self.arm()

    def fill(self) -> int:
        rb = self._rb
        return (rb.writeIndex - rb.readIndex) & rb.bigMask

    def pull(self, n: int) -> np.ndarray:
        """Everything captured since the last call, shape (frames, channels) float32 (a new
        array; ``n``, the frame's share, is not waited for). Decode worker."""
        fill = self.fill()
        if fill >= self.capacity:
            self.overruns += 1
        if fill == 0:
            return self._buf[:0]
        k = self.ring.readinto(self._buf[:fill])
        self.received += k
        return self._buf[:k].copy()


class ClockOutput:
    """A ring consumed by the wall clock instead of a sound card; keeps what it played.

    Same methods as :class:`RingOutput`. ``played()`` is computed from elapsed time, so the
    decode worker is paced exactly as a device would pace it.
    """

    def __init__(
        self, *, samplerate: int, channels: int, blocksize: int, capacity: int, keep: bool = True
    ) -> None:
        self.samplerate = samplerate
        self.channels = channels
        self.blocksize = blocksize
        self.capacity = _next_pow2(capacity)
        self.underruns = 0
        self.written = 0
        self.device_latency_s = 0.0
        self._start: float | None = None
        self._offset = 0
        self.keep = keep
        self.frames: list[np.ndarray] = []
        self.input: RingInput | None = None
        self.input_note = ""

    def start(self) -> None:
        self._start = time.perf_counter()

    def played(self) -> int:
        if self._start is None:
            return 0
        elapsed = int((time.perf_counter() - self._start) * self.samplerate)
        # the clock advances by whole blocks, as a device callback would
        return self._offset + (elapsed // self.blocksize) * self.blocksize

    def fill(self) -> int:
        return self.written - self.played()

    def space(self) -> int:
        return self.capacity - max(0, self.fill())

    def poll(self, prebuffer: int) -> None:
        if self._start is not None and self.fill() < 0:
            # the clock got ahead of the worker: count it and restart the clock from here
            self.underruns += 1
            self._offset = self.written
            self._start = time.perf_counter()

    def write(self, frame: np.ndarray) -> int:
        if self.keep:
            self.frames.append(frame.copy())
        self.written += frame.shape[0]
        return frame.shape[0]

    def audio(self) -> np.ndarray:
        if not self.frames:
            return np.zeros((0, self.channels), dtype=np.float32)
        return np.concatenate(self.frames)

    device_underflows = 0
    device_underflow_times: list[float] = []  # noqa: RUF012 - never written: no device

    def close(self) -> dict[str, int]:
        return {}

"""The live engine: decode worker thread + audio output + OSC in + state out + loader.

Threads in the engine process (no Qt, no UMAP, no training here):
  * audio callback: C (rtmixer), reads the ring;
  * decode worker: the only heavy Python, one torch thread, fills the ring up to the prebuffer;
  * OSC servers: parse and enqueue;
  * state sender: ~30 Hz snapshots to subscribers;
  * loader: loads and warms models/patches off the decode worker, hands them over as events.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from instrument.audio import ClockOutput, RingOutput
from instrument.engine import DecodeLoop, Swap
from instrument.events import Event, EventQueue
from instrument.metrics import Metrics, Reporter
from instrument.osc_server import OSCInput
from instrument.patch import Patch, PatchContext, PatchError, load_patch
from instrument.runtime import ModelError, ModelRuntime
from instrument.state_out import StateSender


def make_context(runtime: ModelRuntime) -> PatchContext:
    info = runtime.info
    encode = None
    if info.has_encode:
        enc_rt = runtime.fresh()  # its own copy: encoding must not touch the playing model's state
        encode = enc_rt.encode
    return PatchContext(latent_size=info.latent_size, samplerate=info.samplerate, encode=encode)


@dataclass(frozen=True)
class LiveConfig:
    """Engine settings, validated at start."""

    samplerate: int
    blocksize: int = 256
    prebuffer: int = 1024
    osc_host: str = "127.0.0.1"
    osc_port: int = 7770
    state_to: tuple[tuple[str, int], ...] = ()
    switch_interval_s: float = 0.0002

    def __post_init__(self) -> None:
        if self.blocksize < 0:
            raise ValueError(f"blocksize must be >= 0, got {self.blocksize}")
        if self.prebuffer < 1:
            raise ValueError(f"prebuffer must be >= 1 frame, got {self.prebuffer}")
        if not 0 < self.osc_port < 65536 and self.osc_port != 0:
            raise ValueError(f"osc port must be in 1..65535, got {self.osc_port}")


class LiveEngine:
    """Everything that runs while playing. ``start()``, then ``stop()``."""

    def __init__(self, runtime: ModelRuntime, patch: Patch, output: RingOutput | ClockOutput,
                 config: LiveConfig, *, latent_map: Any = None,
                 reporter: Reporter | None = None) -> None:
        self.config = config
        self.output = output
        self.queue = EventQueue()
        self.metrics = Metrics()
        self.reporter = reporter or Reporter()
        self.loop = DecodeLoop(
            runtime, patch, self, samplerate=output.samplerate, out_channels=output.channels,
            reporter=self.reporter, metrics=self.metrics, latent_map=latent_map,
            request_load=self._request_load,
        )
        self.metrics.ring_capacity = output.capacity
        self.sender = StateSender(self._snapshot)
        self.sender.on_subscribe = self._hello
        for host, port in config.state_to:
            self.sender.subscribers[(host, port)] = None
        self.sender.on_subscribe = self._hello
        self.inputs: list[OSCInput] = []
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name="sillage-decode", daemon=True)
        self._level_sq = 0.0
        self._level_n = 0
        self._level_peak = 0.0
        self.started_at = math.nan
        self.first_sound_at = math.nan

    # --- event source for the loop: drain the live queue ---------------------------------
    def drain(self, until: float) -> list[Event]:
        return self.queue.drain()

    def clock(self) -> float:
        """Engine time: audio time of the frame being computed (seconds)."""
        return self.loop.t

    # --- start / stop -------------------------------------------------------------------
    def start(self) -> LiveEngine:
        sys.setswitchinterval(self.config.switch_interval_s)
        self.started_at = time.perf_counter()
        cfg = self.config
        self.inputs.append(self._listen(cfg.osc_host, cfg.osc_port, "osc"))
        for port in self.loop.controller.osc_ports():
            self.inputs.append(self._listen(cfg.osc_host, port, "sensor"))
        self._prefill()
        self.output.start()
        self._worker.start()
        self.sender.start()
        return self

    def _listen(self, host: str, port: int, name: str) -> OSCInput:
        return OSCInput(self.queue, host=host, port=port, controller=lambda: self.loop.controller,
                        clock=self.clock, reporter=self.reporter, on_side=self.sender.on_side,
                        name=name).start()

    def _prefill(self) -> None:
        import torch

        with torch.no_grad():
            while self.output.fill() < self.config.prebuffer:
                self._write(self.loop.step())

    def stop(self) -> dict[str, int]:
        self._stop.set()
        for inp in self.inputs:
            inp.close()
        if self._worker.is_alive():
            self._worker.join(timeout=5)
        self.sender.close()
        return self.output.close()

    # --- the decode worker ----------------------------------------------------------------
    def _run(self) -> None:
        """Decode worker: keep the ring filled to the prebuffer, one model frame at a time."""
        ModelRuntime.prepare_thread()
        out = self.output
        sr = out.samplerate
        target = self.config.prebuffer
        frame_guess = max(1, int(self.loop.info.ratio * sr / self.loop.info.samplerate))
        while not self._stop.is_set():
            out.poll(target)
            self.metrics.underruns = out.underruns
            self.metrics.device_underflows = out.device_underflows
            fill = out.fill()
            self.metrics.ring_fill = fill
            if fill < target and out.space() >= 2 * frame_guess:
                frame = self.loop.step()
                self._write(frame)
                for msg in self.loop.outbox:
                    self.sender.outbox.put(msg)
            else:
                # sleep until about one frame has been played
                time.sleep(max(0.0002, min(0.005, (fill - target + frame_guess) / sr)))

    def _write(self, frame: np.ndarray) -> None:
        out = self.output
        fill_before = out.fill()
        out.write(frame)
        arrival = self.loop.last_arrival
        if not math.isnan(arrival):
            # DAC time of this frame's first sample: now + what is queued before it + device
            dac = time.perf_counter() + max(fill_before, 0) / out.samplerate + out.device_latency_s
            self.metrics.latency_s.add(dac - arrival)
        sq = float(np.dot(frame.ravel(), frame.ravel()))
        self._level_sq += sq
        self._level_n += frame.size
        peak = float(np.max(np.abs(frame))) if frame.size else 0.0
        self._level_peak = max(self._level_peak, peak)
        if math.isnan(self.first_sound_at) and peak > 1e-4:
            self.first_sound_at = time.perf_counter()

    # --- loading off the decode worker ----------------------------------------------------
    def _request_load(self, kind: str, arg: str) -> None:
        threading.Thread(target=self._load, args=(kind, arg), name=f"sillage-load-{kind}",
                         daemon=True).start()

    def _load(self, kind: str, arg: str) -> None:
        try:
            if kind == "model":
                runtime = ModelRuntime(arg)
                current = self.loop.patch
                patch = load_patch(current.path or "default", context=make_context(runtime))
                swap = Swap(runtime=runtime, patch=patch)
            else:
                patch = load_patch(arg, context=make_context(self.loop.runtime))
                swap = Swap(patch=patch)
                self._open_patch_ports(patch)
        except (ModelError, PatchError, OSError) as exc:
            self.reporter.reject(kind, f"{exc} (still playing the previous {kind})")
            return
        self.queue.put(Event(self.clock(), "/sillage/_swap", (swap,)))
        print(f"sillage: loaded {kind} {arg}", flush=True)

    def _open_patch_ports(self, patch: Patch) -> None:
        have = {inp.port for inp in self.inputs}
        for port in patch.controller.osc_ports():
            if port not in have:
                self.inputs.append(self._listen(self.config.osc_host, port, "sensor"))

    # --- state ------------------------------------------------------------------------------
    def _hello(self, dest: tuple[str, int]) -> list[tuple[str, tuple[Any, ...]]]:
        i = self.loop.info
        return [("/sillage/state/model", (i.name, i.samplerate, i.ratio, i.latent_size))]

    def latency_terms_ms(self) -> dict[str, float]:
        """The control→sound latency budget, by term (ms)."""
        out = self.output
        info = self.loop.info
        return {
            "frame_wait": 1e3 * info.frame_s,
            "prebuffer": 1e3 * self.config.prebuffer / out.samplerate,
            "block": 1e3 * out.blocksize / out.samplerate,
            "device": 1e3 * out.device_latency_s,
            "model": 1e3 * info.delay_samples / info.samplerate if info.delay_samples is not None else float("nan"),
        }

    def _snapshot(self) -> list[tuple[str, tuple[Any, ...]]]:
        z = self.loop.played_latent()
        msgs: list[tuple[str, tuple[Any, ...]]] = [("/sillage/state/latent", tuple(float(v) for v in z))]
        if self.loop.latent_map is not None:
            try:
                x, y = self.loop.latent_map.to_xy(np.asarray(z, dtype=np.float32))
                msgs.append(("/sillage/state/xy", (float(x), float(y))))
            except Exception:
                pass
        n, sq, peak = self._level_n, self._level_sq, self._level_peak
        self._level_n, self._level_sq, self._level_peak = 0, 0.0, 0.0
        rms_db = 10 * math.log10(sq / n + 1e-12) if n else -120.0
        peak_db = 20 * math.log10(peak + 1e-12)
        self.metrics.rms_db, self.metrics.peak_db = rms_db, peak_db
        msgs.append(("/sillage/state/level", (rms_db, peak_db)))
        msgs.append(("/sillage/state/underruns", (int(self.metrics.underruns),)))
        med, _ = self.metrics.latency_ms()
        terms = self.latency_terms_ms()
        values = (med, terms["frame_wait"], terms["prebuffer"], terms["block"], terms["device"],
                  terms["model"])
        # -1 = unknown (nothing measured yet, or no model card): Max and Pd choke on NaN
        msgs.append(("/sillage/state/latency_ms", tuple(v if math.isfinite(v) else -1.0 for v in values)))
        p50, p99 = self.metrics.decode_ms()
        msgs.append(("/sillage/state/decode_ms", (p50, p99)))
        if self.reporter.last_message:
            msgs.append(("/sillage/state/error", (self.reporter.last_message,)))
            self.reporter.last_message = ""
        return msgs

    def status_line(self) -> str:
        p50, p99 = self.metrics.decode_ms()
        med, jit = self.metrics.latency_ms()
        lat = f"{med:.1f}±{jit:.1f} ms" if math.isfinite(med) else "n/a"
        return (f"underruns {self.metrics.underruns} (device {self.metrics.device_underflows})  decode p50 {p50:.2f} ms p99 {p99:.2f} ms  "
                f"ring {self.metrics.ring_fill}/{self.config.prebuffer}  latency {lat}  "
                f"level {self.metrics.rms_db:.0f} dB  rejected {self.reporter.total}")


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()

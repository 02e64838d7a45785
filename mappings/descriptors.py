"""Audio descriptors of the input, once per model frame: what a patch maps like sensor signals.

:class:`Descriptors` keeps the last ``window`` samples of the (mono) input and, for each new
hop of audio, gives:

=============  ===========================================================================
``loudness``   RMS level of the last ``loudness_window`` samples, dBFS (floor -120)
``centroid``   spectral centroid of the Hann-windowed last ``window`` samples, Hz
               (0 in silence)
``pitch``      f0 in Hz: the model's pitch dimension when the caller gives it, else the
               tracker below; the last voiced value is held through unvoiced frames
``voiced``     1 when ``pitch`` is heard now, else 0
``onset``      1 on the frame where a new sound starts (spectral flux above an adaptive
               threshold, at most one per ``onset_refractory_s``), else 0
``flux``       the positive spectral flux itself (log-magnitude), for continuous mappings
=============  ===========================================================================

Why numpy and written here: ``mappings/`` is numpy-only and these run on the decode worker,
a hop (5 ms) at a time. The pitch tracker is YIN's cumulative mean normalised difference
(de Cheveigné & Kawahara 2002) on one window via FFT autocorrelation (~0.1 ms); the project's
kept tracker, pyworld's DIO (``models.pitchtrack``), analyses whole files at training time and
is not importable here. Models whose card declares a pitch dimension (the DDSP family) give
their own, better estimate: the engine passes it as ``pitch_hz``.
"""

from __future__ import annotations

import math

import numpy as np

DESCRIPTOR_NAMES = ("loudness", "centroid", "pitch", "voiced", "onset", "flux")
SILENCE_DB = -120.0


class Descriptors:
    """Streaming descriptors of a mono signal (see the module docstring).

    Parameters
    ----------
    samplerate : int
    window : int
        Analysis window in samples (2048 at 48 kHz = 43 ms: two periods of 47 Hz).
    fmin_hz, fmax_hz : float
        Pitch search range of the tracker.
    yin_threshold : float
        YIN's aperiodicity threshold (lower = stricter voicing).
    gate_db : float
        Below this loudness nothing is voiced and no onset fires.
    """

    def __init__(
        self,
        *,
        samplerate: int,
        window: int = 2048,
        loudness_window: int = 1024,
        fmin_hz: float = 50.0,
        fmax_hz: float = 1500.0,
        yin_threshold: float = 0.15,
        gate_db: float = -60.0,
        onset_refractory_s: float = 0.05,
        onset_ratio: float = 1.5,
        onset_delta: float = 0.05,
    ) -> None:
        self.samplerate = int(samplerate)
        self.window = int(window)
        self.loudness_window = min(int(loudness_window), self.window)
        self.tau_min = max(2, int(samplerate / fmax_hz))
        self.tau_max = min(self.window // 2, math.ceil(samplerate / fmin_hz))
        self.yin_threshold = yin_threshold
        self.gate_db = gate_db
        self.onset_refractory_s = onset_refractory_s
        self.onset_ratio = onset_ratio
        self.onset_delta = onset_delta
        self._hann = np.hanning(self.window)
        self._freqs = np.fft.rfftfreq(self.window, 1.0 / samplerate)
        self._nfft = 1 << int(2 * self.window - 1).bit_length()
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(self.window)
        self._prev_logmag = np.zeros(self._freqs.size)
        self._flux_hist = np.zeros(32)
        self._flux_pos = 0
        self._since_onset = math.inf
        self._pitch_hz = 0.0
        self.values = dict.fromkeys(DESCRIPTOR_NAMES, 0.0)
        self.values["loudness"] = SILENCE_DB

    def update(self, hop: np.ndarray, *, pitch_hz: float | None = None) -> dict[str, float]:
        """Take the next ``hop`` samples (1-D float) and return the descriptors. Decode worker.

        ``pitch_hz``: the model's own estimate for this hop (its pitch dimension); None runs
        the tracker.
        """
        x = np.nan_to_num(np.asarray(hop, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
        n = x.size
        if n >= self.window:
            self._buf[:] = x[-self.window :]
        elif n:
            self._buf[:-n] = self._buf[n:]
            self._buf[-n:] = x
        buf = self._buf
        tail = buf[-self.loudness_window :]
        ms = float(np.dot(tail, tail)) / tail.size
        loud = max(SILENCE_DB, 10.0 * math.log10(ms + 1e-30))
        mag = np.abs(np.fft.rfft(buf * self._hann))
        total = float(mag.sum())
        centroid = float(np.dot(self._freqs, mag) / total) if total > 1e-9 else 0.0
        logmag = np.log1p(100.0 * mag)
        flux = float(np.maximum(logmag - self._prev_logmag, 0.0).mean())
        self._prev_logmag = logmag
        onset = self._onset(flux, loud, n)
        audible = loud > self.gate_db
        if pitch_hz is None:
            f0 = self._yin(buf) if audible else 0.0
        else:
            f0 = pitch_hz if audible and math.isfinite(pitch_hz) and pitch_hz > 0 else 0.0
        voiced = f0 > 0.0
        if voiced:
            self._pitch_hz = f0
        v = self.values
        v["loudness"] = loud
        v["centroid"] = centroid
        v["pitch"] = self._pitch_hz
        v["voiced"] = 1.0 if voiced else 0.0
        v["onset"] = 1.0 if onset else 0.0
        v["flux"] = flux
        return v

    def _onset(self, flux: float, loud: float, n: int) -> bool:
        hist = self._flux_hist
        threshold = self.onset_ratio * float(np.median(hist)) + self.onset_delta
        hist[self._flux_pos] = flux
        self._flux_pos = (self._flux_pos + 1) % hist.size
        self._since_onset += n / self.samplerate
        if (
            flux > threshold
            and loud > self.gate_db
            and self._since_onset >= self.onset_refractory_s
        ):
            self._since_onset = 0.0
            return True
        return False

    def _yin(self, buf: np.ndarray) -> float:
        """f0 of one window by YIN's cumulative mean normalised difference; 0 when unvoiced."""
        w = self.window // 2
        x = buf - buf.mean()
        # r(tau) = sum_{j<w} x_j x_{j+tau}: the cross term of YIN's difference function, by FFT
        spec = np.conj(np.fft.rfft(x[:w], self._nfft)) * np.fft.rfft(x, self._nfft)
        r = np.fft.irfft(spec, self._nfft)[: self.tau_max + 1]
        sq = np.concatenate(([0.0], np.cumsum(x * x)))
        taus = np.arange(self.tau_max + 1)
        # d(tau) = sum_{j<w} (x_j - x_{j+tau})^2 (YIN's step 2)
        d = sq[w] + (sq[taus + w] - sq[taus]) - 2.0 * r
        d[0] = 0.0
        cum = np.cumsum(d[1:])
        cmnd = np.ones_like(d)
        cmnd[1:] = d[1:] * np.arange(1, d.size) / np.maximum(cum, 1e-12)
        lo, hi = self.tau_min, self.tau_max
        below = np.flatnonzero(cmnd[lo:hi] < self.yin_threshold)
        if below.size == 0:
            return 0.0
        tau = lo + int(below[0])
        while tau + 1 < hi and cmnd[tau + 1] < cmnd[tau]:
            tau += 1  # walk down to the local minimum
        if 1 <= tau < cmnd.size - 1:
            a, b, c = cmnd[tau - 1], cmnd[tau], cmnd[tau + 1]
            den = a - 2 * b + c
            shift = 0.5 * (a - c) / den if abs(den) > 1e-12 else 0.0
        else:
            shift = 0.0
        return self.samplerate / (tau + shift)

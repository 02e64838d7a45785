"""Playability measurements of a loaded nn~-interface TorchScript model (issue 10, (b)–(e)).

NOTE for benchmarks/bench_playability.py: these are the measurement functions the model
README's figures come from. Pure functions of a loaded model (``models.export.load_scripted``
or ``torch.jit.load``) and plain arguments, returning JSON-ready dicts — call them rather
than re-implementing, so the benchmark and the model card agree. Each function resets the
model's streaming state by decoding from a fresh load only if you pass a fresh model: load a
new copy per measurement when state matters (``fresh`` below does that from a path).

* :func:`estimate_f0` — YIN on a mono signal (Hz, aperiodicity), the f0 meter used throughout.
* :func:`held_latent_buzz` — (b) share of held random latents periodic at sr/ratio (×½,1,2,3).
* :func:`latent_jitter` — (c) latent std over time on steady tones across 4 octaves.
* :func:`in_tune` — held pitch latent at MIDI 36–96 → measured f0 error in cents.
* :func:`decode_speed` — (e) decode real-time factor, one frame per call.
* Reconstruction (d) is :func:`models.evaluate.evaluate` (``python -m models.evaluate``).
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import torch

FRAME_RATE_MULTIPLES = (0.5, 1.0, 2.0, 3.0)


def fresh(path: str | Path) -> torch.jit.ScriptModule:
    """A newly loaded copy of a model file (fresh streaming state), on CPU."""
    from models.export import load_scripted

    return load_scripted(path)


def card_latent(path: str | Path) -> dict[str, Any]:
    """The ``[latent]`` table of a model's card (empty for models without a pitch dim)."""
    card = Path(path).with_suffix(".toml")
    if not card.is_file():
        return {}
    return dict(tomllib.loads(card.read_text()).get("latent", {}))


def estimate_f0(
    y: np.ndarray, sr: int, fmin: float = 30.0, fmax: float = 2600.0, threshold: float = 0.15
) -> tuple[float, float]:
    """YIN fundamental frequency of a (steady) mono signal.

    Returns
    -------
    (f0_hz, aperiodicity) — aperiodicity is the cumulative-mean-normalised difference at the
    chosen lag (0 = perfectly periodic, ~1 = noise); f0 is NaN for silence.
    """
    y = np.asarray(y, np.float64)
    y = y - y.mean()
    if np.sqrt(np.mean(y * y)) < 1e-6:
        return float("nan"), 1.0
    lim = len(y) // 2  # lags of the difference function (beyond the search, for refining)
    tau_max = min(int(sr / fmin) + 2, lim - 1)
    tau_min = max(2, int(sr / fmax))
    w = len(y) - lim
    # Difference function d(τ) = Σ (x_j − x_{j+τ})², j < w, via FFT correlations.
    n_fft = 1 << int(np.ceil(np.log2(len(y) + w)))
    spec_y = np.fft.rfft(y, n_fft)
    spec_h = np.fft.rfft(y[:w], n_fft)
    corr = np.fft.irfft(spec_y * np.conj(spec_h), n_fft)[: lim + 1]
    sq = np.concatenate([[0.0], np.cumsum(y * y)])
    lags = np.arange(lim + 1)
    d = sq[w] + (sq[lags + w] - sq[lags]) - 2 * corr
    d[0] = 0.0
    cum = np.cumsum(d[1:]) / np.arange(1, lim + 1)
    cmnd = np.ones(lim + 1)
    cmnd[1:] = d[1:] / np.maximum(cum, 1e-12)
    cand = np.arange(tau_min, tau_max)
    below = cand[cmnd[cand] < threshold]
    if len(below):
        tau = int(below[0])
        while tau + 1 < tau_max and cmnd[tau + 1] < cmnd[tau]:
            tau += 1
    else:
        tau = int(cand[np.argmin(cmnd[cand])])
    aper = float(cmnd[tau])
    # Refine on multiples of the period (2, 4, 8 … periods, as far as the lags reach): the
    # interpolated minimum of d near m·τ measures m periods at once, m times finer.
    period = _parabolic_min(d, tau)
    m = 2
    while m * period + 3 < lim:
        k = round(m * period)
        k = k - 2 + int(np.argmin(d[k - 2 : k + 3]))
        if not 1 <= k < lim:
            break
        period = _parabolic_min(d, k) / m
        m *= 2
    return float(sr / period), aper


def _parabolic_min(d: np.ndarray, k: int) -> float:
    """Fractional position of the minimum of ``d`` near index ``k``."""
    a, b, c = d[k - 1], d[k], d[k + 1]
    den = a - 2 * b + c
    shift = 0.5 * (a - c) / den if abs(den) > 1e-12 else 0.0
    return k + float(np.clip(shift, -1, 1))


def _decode_held(model: Any, z: torch.Tensor, frames: int) -> np.ndarray:
    """Decode latent ``z`` (latent_size,) held for ``frames`` frames → mono numpy."""
    zz = z.view(1, -1, 1).expand(1, z.numel(), frames).contiguous()
    with torch.no_grad():
        return model.decode(zz)[0, 0].numpy().astype(np.float64)


def held_latent_buzz(
    model: Any,
    *,
    n: int = 24,
    seconds: float = 0.6,
    seed: int = 0,
    latent: dict[str, Any] | None = None,
    tolerance_cents: float = 30.0,
) -> dict[str, Any]:
    """(b) Hold ``n`` random latents for ``seconds`` each; count those whose sound is
    periodic (YIN aperiodicity < 0.2) at a multiple (½, 1, 2, 3) of the frame rate sr/ratio.

    Latents are N(0, I); for a model with a pitch dimension (``latent``: the card's [latent]
    table) that dimension is drawn uniformly over MIDI 36–96 instead, and a latent whose
    *requested* pitch is itself within ``tolerance_cents`` of a frame-rate multiple is
    counted apart (it is meant to sound there) and left out of the share.
    """
    sr = int(model.sr)
    lat, ratio = int(model.decode_params[0]), int(model.decode_params[1])
    frame_hz = sr / ratio
    frames = int(seconds * sr) // ratio
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    rows: list[dict[str, Any]] = []
    pitch_dim = None if not latent or "pitch_dim" not in latent else int(latent["pitch_dim"])
    for _ in range(n):
        z = torch.randn(lat, generator=gen)
        requested = None
        if pitch_dim is not None and latent is not None:
            midi = 36 + 60 * float(torch.rand(1, generator=gen))
            requested = 440.0 * 2 ** ((midi - 69) / 12)
            z[pitch_dim] = float(latent.get("pitch_scale", 1.0)) * np.log2(
                requested / float(latent.get("pitch_ref_hz", 440.0))
            )
        y = _decode_held(model, z, frames)
        tail = y[len(y) // 3 :]
        f0, aper = estimate_f0(tail, sr)

        def near(f: float) -> bool:
            return any(
                abs(1200 * np.log2(f / (m * frame_hz))) < tolerance_cents
                for m in FRAME_RATE_MULTIPLES
            )

        buzz = bool(np.isfinite(f0) and aper < 0.2 and near(f0))
        rows.append({"f0_hz": f0, "aperiodicity": aper, "buzz": buzz, "requested_hz": requested})
    counted = [
        r for r in rows if not (r["requested_hz"] and _near_any(r, frame_hz, tolerance_cents))
    ]
    buzzing = sum(bool(r["buzz"]) for r in counted)
    return {
        "latents": n,
        "seconds": seconds,
        "frame_rate_hz": frame_hz,
        "counted": len(counted),
        "excluded_requested_at_frame_rate": n - len(counted),
        "buzzing": int(buzzing),
        "share": round(buzzing / max(len(counted), 1), 4),
        "rows": rows,
    }


def _near_any(row: dict[str, Any], frame_hz: float, tol: float) -> bool:
    f = row["requested_hz"]
    return any(abs(1200 * np.log2(f / (m * frame_hz))) < tol for m in FRAME_RATE_MULTIPLES)


def steady_tone(f0: float, sr: int, seconds: float, level_db: float = -20.0) -> np.ndarray:
    """Sine + half-amplitude 2nd harmonic at RMS ``level_db`` (the issue's test tone)."""
    t = np.arange(int(seconds * sr)) / sr
    y = np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(4 * np.pi * f0 * t)
    y *= 10 ** (level_db / 20) / np.sqrt(np.mean(y * y))
    return y.astype(np.float32)


def latent_jitter(
    model: Any,
    *,
    freqs: tuple[float, ...] = (98.0, 196.0, 392.0, 784.0),
    seconds: float = 2.0,
    skip_seconds: float = 0.25,
    latent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """(c) Encode steady tones; std over time of each latent dimension after ``skip``.

    Reports per tone the std of every dimension, and for models with a pitch dimension the
    mean encoded pitch against the true one (cents).
    """
    sr = int(model.sr)
    ratio = int(model.encode_params[3])
    rows = []
    for f in freqs:
        x = steady_tone(f, sr, seconds)
        n = len(x) // ratio * ratio
        with torch.no_grad():
            z = model.encode(torch.from_numpy(x[:n]).view(1, 1, -1))[0].numpy()
        z = z[:, int(skip_seconds * sr) // ratio :]
        row: dict[str, Any] = {"f0_hz": f, "std": [round(float(v), 4) for v in z.std(1)]}
        if latent and "pitch_dim" in latent:
            p = z[int(latent["pitch_dim"])] / float(latent.get("pitch_scale", 1.0))
            est = float(latent.get("pitch_ref_hz", 440.0)) * 2 ** float(np.mean(p))
            row["encoded_pitch_hz"] = round(est, 3)
            row["encoded_pitch_error_cents"] = round(1200 * np.log2(est / f), 2)
        rows.append(row)
    std = np.array([r["std"] for r in rows])
    out: dict[str, Any] = {"tones": rows, "max_std_all_dims": round(float(std.max()), 4)}
    if latent and "pitch_dim" in latent:
        pd_, ld = int(latent["pitch_dim"]), int(latent.get("loudness_dim", -1))
        timbre = [d for d in range(std.shape[1]) if d not in (pd_, ld)]
        out["max_std_pitch_dim"] = round(float(std[:, pd_].max()), 4)
        if ld >= 0:
            out["max_std_loudness_dim"] = round(float(std[:, ld].max()), 4)
        out["max_std_timbre_dims"] = round(float(std[:, timbre].max()), 4)
    return out


def in_tune(
    model: Any,
    latent: dict[str, Any],
    *,
    notes: tuple[int, ...] = tuple(range(36, 97)),
    seconds: float = 0.5,
    base: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Hold the pitch dimension at each MIDI note (12-TET, A4 = 440 Hz; other dims at
    ``base``, default 0) and measure the f0 of the second half: error in cents."""
    sr = int(model.sr)
    lat, ratio = int(model.decode_params[0]), int(model.decode_params[1])
    frames = int(seconds * sr) // ratio
    pd_ = int(latent["pitch_dim"])
    scale = float(latent.get("pitch_scale", 1.0))
    ref = float(latent.get("pitch_ref_hz", 440.0))
    errors = []
    torch.manual_seed(0)
    for note in notes:
        f = 440.0 * 2 ** ((note - 69) / 12)
        z = torch.zeros(lat) if base is None else base.clone()
        z[pd_] = scale * np.log2(f / ref)
        y = _decode_held(model, z, frames)
        f0, _ = estimate_f0(y[len(y) // 2 :], sr, fmin=0.5 * f, fmax=min(2 * f, 0.45 * sr))
        errors.append(1200 * np.log2(f0 / f) if np.isfinite(f0) else float("inf"))
    err = np.abs(np.array(errors))
    return {
        "notes": [int(notes[0]), int(notes[-1])],
        "median_abs_cents": round(float(np.median(err)), 3),
        "max_abs_cents": round(float(err.max()), 3),
        "errors_cents": [round(float(e), 3) for e in errors],
    }


def decode_speed(
    model: Any, *, calls: int = 2000, warmup: int = 50, seed: int = 0
) -> dict[str, Any]:
    """(e) Decode one frame per call (batch 1) on the current torch thread setting: mean,
    p50, p99 microseconds and × real time (frame duration / mean time)."""
    sr = int(model.sr)
    lat, ratio = int(model.decode_params[0]), int(model.decode_params[1])
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(1, lat, 1, generator=gen) * 0.5
    times = []
    with torch.no_grad():
        for i in range(warmup + calls):
            t0 = time.perf_counter()
            model.decode(z)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    t = np.array(times) * 1e6
    frame_us = ratio / sr * 1e6
    return {
        "calls": calls,
        "threads": torch.get_num_threads(),
        "mean_us": round(float(t.mean()), 1),
        "p50_us": round(float(np.percentile(t, 50)), 1),
        "p99_us": round(float(np.percentile(t, 99)), 1),
        "x_real_time": round(frame_us / float(t.mean()), 2),
    }

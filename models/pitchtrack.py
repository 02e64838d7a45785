"""f0 labels for user audio at training time (audio that has no exact f0, unlike models.corpus).

The tracker is **DIO + StoneMask** from pyworld (the WORLD vocoder's f0 estimator), chosen
with ``benchmarks/bench_pitch_trackers.py`` against exact synthetic f0 (sines and band-limited
sawtooths at MIDI 36-96 detuned off the semitone grid, vibrato, an octave glide, a vowel, a
missing fundamental, a sawtooth at 10 and 0 dB SNR, notes separated by silence, white and pink
noise; 48 kHz, hop 256; one run on a 2-core Intel Xeon shared with a training job):

=================  ==========  =======  ===========  ========  =========  ===============
tracker            median |c|  p95 |c|  gross >50 c  voicing   false      seconds per
                                                     recall    voicing    audio second
=================  ==========  =======  ===========  ========  =========  ===============
DIO + StoneMask    0.44        3.8      0.25 %       99.8 %    0 %        0.05
librosa pYIN       3.7         17       3.3 %        82 %      0 %        2.1
pyworld Harvest    0.85        1961     27 %         67 %      5.9 %      0.51
torchcrepe tiny    6.9         79       6.6 %        93 %      2.1 %      1.0
torchcrepe full    5.2         74       6.6 %        93 %      1.0 %      20-28 (*)
pesto-pitch 2.0.1  7.2         63       6.4 %        87 %      25 %       0.75
=================  ==========  =======  ===========  ========  =========  ===============

(*) run apart (``--only crepe_full``), niced, on a machine at load 10: the speed is only
indicative. Timings vary with the load of the shared machine (pYIN measured 1.0 and 2.1 in
two runs); the order does not. DIO + StoneMask is the most accurate and by far
the fastest, so a folder of recordings is labelled in seconds on a laptop; it is C++ with
numpy as its only dependency and needs no weights. pYIN is the runner-up on robustness (a
real voicing probability, an HMM against octave jumps) but 40 times slower and quantised to
10-cent bins; Harvest breaks on pure tones with a 2.1 kHz ceiling; torchcrepe and pesto
are coarser here (CREPE's range ends below 2 kHz, pesto calls a quarter of the noise frames
voiced) and both import torchaudio, which has no wheel that loads against this project's
torch 2.13.

What DIO does not give: a voicing *probability* (its voicing is 0/1, returned as such), and
it has not been measured here on real recordings (reverb, breath, several voices at once);
pYIN is the first thing to try if labels on such audio look wrong.

Frame convention (the same as ``models.corpus``'s exact labels): frame ``k`` stands for samples
``[k * hop, (k + 1) * hop)`` and is read at its last sample, ``(k + 1) * hop - 1`` (a causal
model has heard the whole frame by then); ``n_frames = len(audio) // hop``. Unvoiced frames
carry the pitch of their voiced neighbours (interpolated in log frequency, held at the ends),
so a pitch latent trained on them stays continuous; the voiced probability says which frames
to trust. A clip with no voiced frame at
all gets ``fill_hz`` everywhere (440 Hz: the pitch latent's reference) and probability 0.

Training-time only: the tracker is imported inside :func:`label_f0`, so the inference code in
``models/`` never imports it.
"""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any

import numpy as np

FMIN_HZ = 40.0
FMAX_HZ = 2100.0


def resample_track(
    t_src: np.ndarray,
    f0_src: np.ndarray,
    prob_src: np.ndarray,
    *,
    n_frames: int,
    hop: int,
    samplerate: int,
    fill_hz: float = 440.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A tracker's own frames to the model's frames (read at their last sample).

    Parameters
    ----------
    t_src : ndarray, shape (m,)
        Times of the tracker's frames in seconds, increasing.
    f0_src : ndarray, shape (m,)
        Its f0 in Hz; 0 or NaN where it found no pitch.
    prob_src : ndarray, shape (m,)
        Its voiced probability (or 0/1 flag) in [0, 1]; NaN counts as 0.

    Returns
    -------
    f0_hz : ndarray, shape (n_frames,), float32
    voiced_prob : ndarray, shape (n_frames,), float32
    """
    t_src = np.asarray(t_src, dtype=np.float64)
    f0_src = np.nan_to_num(np.asarray(f0_src, dtype=np.float64), nan=0.0)
    prob_src = np.clip(np.nan_to_num(np.asarray(prob_src, dtype=np.float64), nan=0.0), 0.0, 1.0)
    centres = ((np.arange(n_frames) + 1) * hop - 1) / samplerate
    prob = np.interp(centres, t_src, prob_src) if len(t_src) else np.zeros(n_frames)
    voiced = f0_src > 0
    if not voiced.any():
        return np.full(n_frames, fill_hz, np.float32), np.zeros(n_frames, np.float32)
    log_f0 = np.interp(centres, t_src[voiced], np.log2(f0_src[voiced]))
    return (2.0**log_f0).astype(np.float32), prob.astype(np.float32)


def label_f0(
    audio: np.ndarray, sr: int, hop: int, *, fill_hz: float = 440.0
) -> tuple[np.ndarray, np.ndarray]:
    """f0 in Hz and voiced probability for each frame of ``hop`` samples (training time).

    Parameters
    ----------
    audio : ndarray, shape (n_samples,) or (channels, n_samples)
        Any float dtype; channels are averaged.
    sr : int
        Its sample rate in Hz.
    hop : int
        Samples per frame (the model's ratio).

    Returns
    -------
    f0_hz : ndarray, shape (n_samples // hop,), float32
        Filled through unvoiced frames (see the module docstring); within [40, 2100] Hz where
        voiced.
    voiced_prob : ndarray, shape (n_samples // hop,), float32 in [0, 1]
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.ndim != 1:
        raise ValueError(f"audio must be (n_samples,) or (channels, n_samples), got {x.shape}")
    if hop < 1 or sr < 1:
        raise ValueError(f"hop and sr must be positive, got hop={hop}, sr={sr}")
    n_frames = len(x) // hop
    if n_frames == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    x = np.nan_to_num(x)
    return _track(x, sr, hop, n_frames, fill_hz)


def _track(
    x: np.ndarray, sr: int, hop: int, n_frames: int, fill_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    pyworld = _import_pyworld()
    # DIO's own frames: 5 ms or finer (a frame of the model may be shorter), then interpolated.
    period_ms = min(5.0, 1000.0 * hop / sr)
    x = np.ascontiguousarray(x, dtype=np.float64)
    f0, t = pyworld.dio(x, sr, f0_floor=FMIN_HZ, f0_ceil=FMAX_HZ, frame_period=period_ms)
    f0 = pyworld.stonemask(x, f0, t, sr)
    f0 = np.where((f0 >= FMIN_HZ * 0.9) & (f0 <= FMAX_HZ * 1.1), f0, 0.0)
    return resample_track(
        t, f0, (f0 > 0).astype(np.float64), n_frames=n_frames, hop=hop, samplerate=sr,
        fill_hz=fill_hz,
    )  # fmt: skip


def _import_pyworld() -> Any:
    """Import pyworld, which reads its version with ``pkg_resources`` (pyworld 0.3.5);
    setuptools 81 and later no longer ship that module, so a minimal one stands in."""
    try:
        with warnings.catch_warnings():  # setuptools 67-80 warn that pkg_resources is deprecated
            warnings.simplefilter("ignore")
            import pkg_resources  # noqa: F401
    except ImportError:
        from importlib.metadata import version

        stub = types.ModuleType("pkg_resources")
        stub.get_distribution = lambda name: types.SimpleNamespace(version=version(name))  # type: ignore[attr-defined]
        sys.modules.setdefault("pkg_resources", stub)
    try:
        import pyworld
    except ImportError as exc:
        raise ImportError(
            f"models.pitchtrack needs pyworld ({exc}); install it with `pip install pyworld` "
            "(it is in the project's dependencies)"
        ) from exc
    return pyworld

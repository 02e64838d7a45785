"""Pitch trackers for labelling user audio: accuracy on exact synthetic f0, and speed.

``python -m benchmarks.bench_pitch_trackers [--seconds S] [--all] [--only NAME ...]``

Candidates (each from PyPI, weights in the wheel, nothing downloaded at run time): librosa's
pYIN, pyworld's Harvest and DIO (+StoneMask), torchcrepe (tiny, full) and pesto-pitch. Those
that are not installed are reported as such. torchcrepe and pesto import ``torchaudio`` at
module level, and no torchaudio wheel loads against this project's torch 2.13; the benchmark
puts an empty stand-in module in its place (they only use it to read files), which is itself a
reason not to depend on them.

Signals (48 kHz, hop 256 like the default model), each with its exact f0 per frame:
sines and band-limited sawtooths at MIDI 36–96 (each detuned off the semitone grid), vibrato (±50 and ±100 cents), an octave
glide, a sawtooth in noise (10 dB SNR); white and pink noise (unvoiced: every frame should be
unvoiced). Figures: cents error on voiced frames (median, p95, gross errors > 50 cents),
voicing recall (voiced frames with probability > 0.5), false voicing on noise, and the real-time
factor on one thread (processing seconds per audio second).

Prints JSON and writes ``benchmarks/results/pitch_trackers.json``.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit  # noqa: E402

SR = 48000
HOP = 256
FMIN_HZ = 40.0
FMAX_HZ = 2100.0
Tracker = Callable[[np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# --- signals with exact f0 ---------------------------------------------------------------
def _frame_f0(f0_samples: np.ndarray) -> np.ndarray:
    """f0 at each frame's last sample ((k + 1) * HOP - 1), the convention of models.pitchtrack."""
    n = len(f0_samples) // HOP
    return f0_samples[(np.arange(n) + 1) * HOP - 1]


def _osc(f0: np.ndarray, harmonics: int, rng: np.random.Generator) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0) / SR + rng.uniform(0, 2 * np.pi)
    out = np.zeros_like(f0)
    for h in range(1, harmonics + 1):
        out += np.where(h * f0 < 0.45 * SR, np.sin(h * phase) / h, 0.0)
    return out


def signals(seconds: float, rng: np.random.Generator) -> list[dict[str, Any]]:
    n = int(seconds * SR)
    t = np.arange(n) / SR
    out: list[dict[str, Any]] = []

    def add(kind: str, f0: np.ndarray, x: np.ndarray, voiced: np.ndarray | None = None) -> None:
        x = 0.5 * x / (np.max(np.abs(x)) + 1e-9)
        v = np.ones(n, bool) if voiced is None else voiced
        out.append(
            {
                "kind": kind,
                "audio": x.astype(np.float32),
                "f0": _frame_f0(f0),
                "voiced": _frame_f0(v),
            }
        )

    for midi in range(36, 97, 6):
        # Off the 12-TET grid (up to ±50 cents): trackers whose bins sit on semitones would
        # otherwise look exact on grid pitches.
        detune = ((midi * 0.377) % 1.0) - 0.5
        f = np.full(n, 440.0 * 2 ** ((midi + detune - 69) / 12))
        add(f"sine_{midi}", f, _osc(f, 1, rng))
        add(f"saw_{midi}", f, _osc(f, 60, rng))
    for base, cents in ((220.0, 50.0), (440.0, 100.0), (110.0, 100.0)):
        f = base * 2 ** (cents / 1200 * np.sin(2 * np.pi * 5.5 * t))
        add(f"vibrato_{base:g}_{cents:g}c", f, _osc(f, 20, rng))
    f = 110.0 * 2 ** (3 * t / t[-1])
    add("glide_110_880", f, _osc(f, 20, rng))
    f = np.full(n, 330.0)
    s = _osc(f, 30, rng)
    s = s / np.std(s) + rng.standard_normal(n) * 10 ** (-10 / 20)
    add("saw_330_snr10", f, s)
    s = _osc(f, 30, rng)
    s = s / np.std(s) + rng.standard_normal(n)
    add("saw_330_snr0", f, s)
    f = np.full(n, 200.0)
    add("missing_fundamental_200", f, _osc(f, 12, rng) - np.sin(2 * np.pi * np.cumsum(f) / SR))
    # A sung-vowel stand-in: a pulse train through three formant resonators ("ah").
    from scipy.signal import lfilter

    f = 220.0 * 2 ** (0.3 / 12 * np.sin(2 * np.pi * 5 * t))
    pulse = np.diff(np.floor(np.cumsum(f) / SR), prepend=0.0)
    vowel = np.zeros(n)
    for fc, bw in ((700.0, 110.0), (1220.0, 120.0), (2600.0, 160.0)):
        r = np.exp(-np.pi * bw / SR)
        vowel += lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * fc / SR), r * r], pulse)
    add("vowel_220", f, vowel)
    # Notes separated by silence: voicing must follow the gaps (f0 in a gap is not scored).
    f = np.full(n, 130.8)
    gate = np.zeros(n, bool)
    seg = n // 6
    for k, midi in enumerate((48, 55, 60, 67, 72, 79)):
        f[k * seg : (k + 1) * seg] = 440.0 * 2 ** ((midi - 69) / 12)
        gate[k * seg : k * seg + (2 * seg) // 3] = True
    add("notes_with_gaps", f, _osc(f, 20, rng) * gate, gate)
    white = rng.standard_normal(n)
    pink = np.fft.irfft(np.fft.rfft(white) / np.sqrt(np.maximum(np.arange(n // 2 + 1), 1)), n)
    add("white_noise", np.zeros(n), white, np.zeros(n, bool))
    add("pink_noise", np.zeros(n), pink, np.zeros(n, bool))
    return out


# --- trackers (all return f0 Hz and voiced probability at the frame centres) ------------------
def _to_frames(t_src: np.ndarray, f0: np.ndarray, prob: np.ndarray, n: int, hop: int, sr: int):
    from models.pitchtrack import resample_track

    return resample_track(t_src, f0, prob, n_frames=n, hop=hop, samplerate=sr)


def pyin(audio: np.ndarray, sr: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    import librosa
    import soxr

    sr2 = 16000
    x = soxr.resample(audio, sr, sr2)
    f0, _flag, prob = librosa.pyin(
        x, fmin=FMIN_HZ, fmax=FMAX_HZ, sr=sr2, frame_length=1024, hop_length=80, center=True
    )
    t = np.arange(len(f0)) * 80 / sr2
    return _to_frames(t, np.nan_to_num(f0), prob, len(audio) // hop, hop, sr)


def _stub_pkg_resources() -> None:
    """pyworld 0.3.5 reads its version with pkg_resources, which setuptools >= 81 dropped."""
    try:
        importlib.import_module("pkg_resources")
    except ImportError:
        stub = types.ModuleType("pkg_resources")
        version = importlib.import_module("importlib.metadata").version
        stub.get_distribution = lambda name: types.SimpleNamespace(version=version(name))  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = stub


def _world(method: str) -> Tracker:
    def track(audio: np.ndarray, sr: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
        _stub_pkg_resources()
        import pyworld

        x = audio.astype(np.float64)
        period_ms = 5.0
        if method == "harvest":
            f0, t = pyworld.harvest(
                x, sr, f0_floor=FMIN_HZ, f0_ceil=FMAX_HZ, frame_period=period_ms
            )
        else:
            f0, t = pyworld.dio(x, sr, f0_floor=FMIN_HZ, f0_ceil=FMAX_HZ, frame_period=period_ms)
            f0 = pyworld.stonemask(x, f0, t, sr)
        return _to_frames(t, f0, (f0 > 0).astype(float), len(audio) // hop, hop, sr)

    return track


def _stub_torchaudio() -> None:
    try:
        importlib.import_module("torchaudio")
    except (ImportError, OSError):
        for k in [k for k in sys.modules if k.startswith("torchaudio")]:
            del sys.modules[k]
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")


def _crepe(model: str) -> Tracker:
    def track(audio: np.ndarray, sr: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
        import soxr
        import torch

        _stub_torchaudio()
        import torchcrepe

        x = torch.from_numpy(soxr.resample(audio, sr, 16000).astype(np.float32))[None]
        # Weighted argmax: the default Viterbi decoder snaps to CREPE's 20-cent bins.
        f0, per = torchcrepe.predict(
            x, 16000, 80, FMIN_HZ, FMAX_HZ, model, return_periodicity=True, batch_size=512,
            device="cpu", decoder=torchcrepe.decode.weighted_argmax,
        )  # fmt: skip
        f0, per = f0[0].numpy(), per[0].numpy()
        t = np.arange(len(f0)) * 80 / 16000
        return _to_frames(t, f0, per, len(audio) // hop, hop, sr)

    return track


def pesto(audio: np.ndarray, sr: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    _stub_torchaudio()
    import pesto as pesto_mod

    t, f0, conf, _ = pesto_mod.predict(torch.from_numpy(audio), sr, step_size=5.0)
    return _to_frames(t.numpy() / 1000.0, f0.numpy(), conf.numpy(), len(audio) // hop, hop, sr)


TRACKERS: dict[str, tuple[str, Tracker]] = {
    "pyin": ("librosa", pyin),
    "harvest": ("pyworld", _world("harvest")),
    "dio_stonemask": ("pyworld", _world("dio")),
    "crepe_tiny": ("torchcrepe", _crepe("tiny")),
    "crepe_full": ("torchcrepe", _crepe("full")),
    "pesto": ("pesto", pesto),
}


#: Left out unless --all (or named with --only): torchcrepe full runs at several times real
#: time on one CPU thread.
SLOW = ("crepe_full",)


def score(name: str, fn: Tracker, sigs: list[dict[str, Any]]) -> dict[str, Any]:
    cents: list[np.ndarray] = []
    recall: list[np.ndarray] = []
    false_voiced: list[np.ndarray] = []
    per_kind: dict[str, float] = {}
    seconds = 0.0
    elapsed = 0.0
    fn(sigs[0]["audio"][: SR // 4], SR, HOP)  # warm-up (imports, JIT, weights)
    for s in sigs:
        t0 = time.perf_counter()
        f0, prob = fn(s["audio"], SR, HOP)
        elapsed += time.perf_counter() - t0
        seconds += len(s["audio"]) / SR
        ref, voiced = s["f0"], s["voiced"]
        n = min(len(ref), len(f0))
        # Frames within 3 of the signal's ends or of a voicing change are not scored.
        near_edge = np.zeros(n, bool)
        near_edge[:3] = near_edge[n - 3 :] = True
        for k in np.flatnonzero(np.diff(voiced[:n].astype(int))):
            near_edge[max(k - 2, 0) : k + 4] = True
        f0, prob, ref, voiced = f0[:n], prob[:n], ref[:n], voiced[:n]
        on = voiced & ~near_edge
        off = ~voiced & ~near_edge
        if on.any():
            err = 1200 * np.log2(np.maximum(f0[on], 1e-3) / ref[on])
            cents.append(err)
            recall.append(prob[on] > 0.5)
            per_kind[s["kind"]] = round(float(np.median(np.abs(err))), 2)
        if off.any():
            false_voiced.append(prob[off] > 0.5)
    c = np.abs(np.concatenate(cents))
    return {
        "median_abs_cents": round(float(np.median(c)), 2),
        "p95_abs_cents": round(float(np.percentile(c, 95)), 1),
        "gross_error_rate": round(float(np.mean(c > 50)), 4),
        "voicing_recall": round(float(np.mean(np.concatenate(recall))), 4),
        "false_voicing_unvoiced": round(float(np.mean(np.concatenate(false_voiced))), 4),
        "realtime_factor_1_thread": round(elapsed / seconds, 4),
        "median_abs_cents_by_signal": per_kind,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each signal")
    parser.add_argument("--only", nargs="*", default=None, help="tracker names to run")
    parser.add_argument(
        "--all", action="store_true", help=f"also the slow ones ({', '.join(SLOW)}; minutes)"
    )
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    sigs = signals(args.seconds, np.random.default_rng(0))
    results: dict[str, Any] = {}
    for name, (package, fn) in TRACKERS.items():
        if (args.only and name not in args.only) or (
            not args.only and not args.all and name in SLOW
        ):
            continue
        _stub_torchaudio()
        _stub_pkg_resources()
        try:
            importlib.import_module(package)
        except ImportError as exc:
            results[name] = {"skipped": f"{package} not installed ({exc})"}
            continue
        print(f"tracker {name}...", file=sys.stderr, flush=True)
        try:
            results[name] = {"package": package, **score(name, fn, sigs)}
        except Exception as exc:  # one tracker failing must not hide the others' figures
            results[name] = {"package": package, "failed": f"{type(exc).__name__}: {exc}"}
    emit(
        "pitch_trackers",
        {
            "cpu_model": cpu_model(),
            "samplerate": SR,
            "hop": HOP,
            "signals": [s["kind"] for s in sigs],
            "seconds_per_signal": args.seconds,
            "trackers": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

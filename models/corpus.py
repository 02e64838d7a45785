"""Deterministic synthetic musical corpus, owned by the project, to train the default model.

``python -m models.corpus OUT_DIR [--seed N] [--minutes M]`` writes 48 kHz mono wav files:
``OUT_DIR/train/*.wav`` (``M`` minutes, each with exact f0 labels in ``*.f0.npz``) and ``OUT_DIR/holdout/*.wav`` (a tenth of that, at
least 30 s, from an independent random stream) for evaluation. Five families — plucked
strings (Karplus–Strong), FM bells, vowel formant tones, bowed/noise textures, percussive
hits — over several pitches and loudnesses. Same seed, same bytes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

SR = 48000
FILE_SECONDS = 20.0
SCALE = np.array([0, 2, 4, 7, 9])  # major pentatonic: consonant overlaps
VOWELS = {  # formant centre frequencies (Hz) and bandwidths, adult voice
    "a": ((800, 1150, 2900), (80, 90, 120)),
    "e": ((400, 1600, 2700), (60, 80, 120)),
    "i": ((300, 2300, 3000), (50, 100, 120)),
    "o": ((450, 800, 2830), (70, 80, 100)),
    "u": ((325, 700, 2530), (50, 60, 170)),
}
Rng = np.random.Generator
# A family renders one note: (rng, duration_s, info) → audio; pitched families put the note's
# exact f0 (Hz, scalar or per sample) in ``info["f0"]``.
Family = Callable[[Rng, float, "dict | None"], np.ndarray]


def midi_hz(note: float) -> float:
    return float(440.0 * 2 ** ((note - 69) / 12))


def _pitch(rng: Rng, lo: int, hi: int) -> float:
    octave = rng.integers(lo, hi + 1)
    return midi_hz(12 * octave + SCALE[rng.integers(len(SCALE))])


def _env(n: int, attack_s: float, release_s: float) -> np.ndarray:
    t = np.arange(n) / SR
    a = np.clip(t / max(attack_s, 1e-4), 0, 1)
    r = np.clip((n / SR - t) / max(release_s, 1e-4), 0, 1)
    return a * r


def _label(info: dict | None, f0: float | np.ndarray) -> None:
    """Record a note's exact fundamental (Hz, scalar or per sample) for the f0 labels."""
    if info is not None:
        info["f0"] = f0


def pluck(rng: Rng, dur: float, info: dict | None = None) -> np.ndarray:
    """Karplus–Strong string: noise burst through a damped delay loop."""
    f = _pitch(rng, 3, 6)
    n = int(dur * SR)
    d = max(2, round(SR / f - 0.5))  # the two-tap average adds half a sample of delay
    g = rng.uniform(0.985, 0.998)
    burst = np.zeros(n)
    burst[:d] = rng.uniform(-1, 1, d) * np.hanning(d)
    # Brighter or duller pluck: one-pole lowpass on the excitation.
    burst = signal.lfilter([1 - rng.uniform(0.0, 0.7)], [1, -rng.uniform(0.0, 0.7)], burst)
    a = np.zeros(d + 2)
    a[0] = 1.0
    a[d] = a[d + 1] = -0.5 * g  # averaging loop filter: highs die first, as on a string
    y = signal.lfilter([1.0], a, burst)
    _label(info, SR / (d + 0.5))  # the loop's period: d samples plus the average's half
    return y * _env(n, 0.001, 0.05)


def bell(rng: Rng, dur: float, info: dict | None = None) -> np.ndarray:
    """Two-operator FM with a decaying index: inharmonic, bell-like partials."""
    f = _pitch(rng, 4, 7)
    n = int(dur * SR)
    t = np.arange(n) / SR
    ratio = rng.choice([1.4, 2.0, 3.5, 1.0 + np.sqrt(2)])
    decay = rng.uniform(0.6, 3.0)
    index = rng.uniform(1.0, 6.0) * np.exp(-t / (decay * 0.5))
    mod = np.sin(2 * np.pi * f * ratio * t)
    y = np.sin(2 * np.pi * f * t + index * mod) * np.exp(-t / decay)
    _label(info, f)  # the carrier: the pitch one hears (partials may be inharmonic)
    return y * _env(n, 0.002, 0.05)


def vowel(rng: Rng, dur: float, info: dict | None = None) -> np.ndarray:
    """Glottal pulse train with vibrato through three formant resonators."""
    f = _pitch(rng, 2, 5)
    n = int(dur * SR)
    t = np.arange(n) / SR
    vib = 1 + 0.006 * np.sin(2 * np.pi * rng.uniform(4.5, 6.5) * t) * np.clip(t / 0.3, 0, 1)
    phase = np.cumsum(f * vib / SR) % 1.0
    src = (2 * phase - 1) - 0.3 * np.sign(np.sin(2 * np.pi * phase))  # bright saw-ish source
    src = signal.lfilter([1, -0.95], [1], src)  # glottal tilt inverted: brighter
    freqs, bws = VOWELS[str(rng.choice(list(VOWELS)))]
    y = np.zeros(n)
    for i, (fc, bw) in enumerate(zip(freqs, bws, strict=True)):
        r = np.exp(-np.pi * bw / SR)
        th = 2 * np.pi * fc / SR
        y += signal.lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], src) / (1 + i)
    _label(info, f * vib)
    return y * _env(n, rng.uniform(0.05, 0.3), rng.uniform(0.1, 0.4))


def bowed(rng: Rng, dur: float, info: dict | None = None) -> np.ndarray:
    """Bowed/noise texture: harmonic resonators driven by noise plus a soft sawtooth,
    or a breathy noise band sweeping slowly."""
    n = int(dur * SR)
    t = np.arange(n) / SR
    noise = rng.standard_normal(n)
    if rng.random() < 0.5:
        f = _pitch(rng, 2, 5)
        y = np.zeros(n)
        for k in range(1, 8):
            fc = f * k
            if fc > 16000:
                break
            r = np.exp(-np.pi * 8.0 / SR)
            th = 2 * np.pi * fc / SR
            y += signal.lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], noise) / k
        saw = 2 * ((f * t) % 1.0) - 1
        y = y * 4 + 0.15 * signal.lfilter([0.2], [1, -0.8], saw)
        _label(info, f)
        return y * _env(n, rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.6))
    # Wind: bandpass noise whose centre glides, band by band in short blocks.
    lo, hi = rng.uniform(300, 1500), rng.uniform(2000, 9000)
    block = 2048
    y = np.zeros(n)
    zi = np.zeros(2)
    for s in range(0, n, block):
        fc = lo + (hi - lo) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.2 * s / SR + rng.uniform(0, 0.1)))
        b, a = signal.iirpeak(fc, 4.0, fs=SR)
        seg, zi = signal.lfilter(b, a, noise[s : s + block], zi=zi)
        y[s : s + block] = seg
    return y * _env(n, rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0))


def hit(rng: Rng, dur: float, info: dict | None = None) -> np.ndarray:
    """Percussion: kick (pitch sweep), snare (tone + noise), hat (high noise), tom."""
    n = int(min(dur, 0.8) * SR)
    t = np.arange(n) / SR
    kind = rng.integers(4)
    if kind == 0:
        f = 45 + 120 * np.exp(-t / 0.03)
        y = np.sin(2 * np.pi * np.cumsum(f) / SR) * np.exp(-t / rng.uniform(0.15, 0.4))
        _label(info, f)
    elif kind == 1:
        tone = np.sin(2 * np.pi * rng.uniform(160, 240) * t) * np.exp(-t / 0.05)
        nz = signal.lfilter(*signal.butter(2, 1500, "high", fs=SR), rng.standard_normal(n))
        y = 0.6 * tone + 0.5 * nz * np.exp(-t / rng.uniform(0.08, 0.2))
    elif kind == 2:
        nz = signal.lfilter(*signal.butter(4, 7000, "high", fs=SR), rng.standard_normal(n))
        y = nz * np.exp(-t / rng.uniform(0.02, 0.12))
    else:
        f = _pitch(rng, 2, 3) * (1 + 0.5 * np.exp(-t / 0.05))
        y = np.sin(2 * np.pi * np.cumsum(f) / SR) * np.exp(-t / rng.uniform(0.2, 0.5))
        _label(info, f)
    return y * _env(n, 0.0005, 0.01)


def organ(rng: Rng, dur: float, info: dict | None = None) -> np.ndarray:
    """Additive organ chord: a triad of stacked harmonics with slow swell (not in the default
    corpus: new material for fine-tuning)."""
    n = int(dur * SR)
    t = np.arange(n) / SR
    root = _pitch(rng, 3, 4)
    y = np.zeros(n)
    for ratio in (1.0, 1.25 if rng.random() < 0.5 else 1.2, 1.5):
        for k, amp in ((1, 1.0), (2, 0.5), (4, 0.3), (8, 0.15)):
            y += amp * np.sin(2 * np.pi * root * ratio * k * t + rng.uniform(0, 6.28))
    _label(info, root)  # a chord: labelled by its root
    return y * _env(n, rng.uniform(0.1, 0.4), rng.uniform(0.2, 0.5))


def glide(rng: Rng, dur: float, info: dict | None = None) -> np.ndarray:
    """Sine-ish chirp gliding between two pitches, with a little FM grit."""
    n = int(dur * SR)
    t = np.arange(n) / SR
    f0, f1 = _pitch(rng, 3, 6), _pitch(rng, 3, 6)
    f = f0 * (f1 / f0) ** (t / max(dur, 1e-3))
    phase = 2 * np.pi * np.cumsum(f) / SR
    y = np.sin(phase + 0.8 * np.sin(2 * phase))
    _label(info, f)
    return y * _env(n, 0.02, 0.1)


def clang(rng: Rng, dur: float, info: dict | None = None) -> np.ndarray:
    """Metallic clang: inharmonic partials (stiff bar ratios) with fast decays."""
    n = int(dur * SR)
    t = np.arange(n) / SR
    f = _pitch(rng, 4, 6)
    y = np.zeros(n)
    for ratio in (1.0, 2.756, 5.404, 8.933):
        if f * ratio < 18000:
            y += np.sin(2 * np.pi * f * ratio * t) * np.exp(-t * ratio / rng.uniform(0.3, 1.2))
    _label(info, f)
    return y * _env(n, 0.0005, 0.02)


FAMILIES: dict[str, Family] = {
    "pluck": pluck,
    "bell": bell,
    "vowel": vowel,
    "bowed": bowed,
    "hit": hit,
}
# Material the default model never saw, for fine-tuning demos and tests.
EXTRA_FAMILIES: dict[str, Family] = {
    "organ": organ,
    "glide": glide,
    "clang": clang,
}
ALL_FAMILIES = {**FAMILIES, **EXTRA_FAMILIES}


LABEL_HOP = 256  # samples per f0 label frame (the default model's ratio)
DOMINANCE = 0.7  # share of a frame's energy the labelled voice must hold to count as voiced
SILENT_RMS = 1e-4  # frames quieter than this (-80 dB) are unvoiced


def render_file(
    rng: Rng,
    family: str | None,
    seconds: float | None = None,
    mix: tuple[str, ...] = tuple(FAMILIES),
) -> np.ndarray:
    """One file: notes of one family (or of ``mix`` when ``family`` is None) at varied
    loudness, overlapping a little. Returns float32 mono, peak ≤ 0.95."""
    return render_file_labelled(rng, family, seconds, mix)[0]


def render_file_labelled(
    rng: Rng,
    family: str | None,
    seconds: float | None = None,
    mix: tuple[str, ...] = tuple(FAMILIES),
    hop: int = LABEL_HOP,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`render_file` (same random stream, same audio) plus exact per-frame f0 labels.

    Notes overlap, so each frame of ``hop`` samples is labelled with its **dominant** voice:
    the note with the most energy in that frame. The frame is voiced when that note is
    pitched (its family reports an f0) and holds at least ``DOMINANCE`` of the frame's energy;
    the label is that note's exact f0 at the frame's last sample. A monophonic synthesiser
    can reproduce the dominant voice; the quieter overlapping tails are what it cannot.

    Returns
    -------
    audio : ndarray (n,), float32, peak ≤ 0.95
    f0_hz : ndarray (n // hop,), float32 — 0 where unvoiced
    voiced : ndarray (n // hop,), float32 — 1.0 voiced, 0.0 unvoiced
    """
    seconds = FILE_SECONDS if seconds is None else seconds
    n = int(seconds * SR)
    frames = n // hop
    out = np.zeros(n)
    total = np.zeros(frames)
    best = np.zeros(frames)
    best_f0 = np.zeros(frames)
    t = rng.uniform(0, 0.2)
    while t < seconds - 0.3:
        name = family or str(rng.choice(list(mix)))
        dur = float(rng.uniform(0.3, 2.5)) if name != "hit" else float(rng.uniform(0.2, 0.6))
        info: dict = {}
        note = ALL_FAMILIES[name](rng, dur, info)
        note = note / (np.abs(note).max() + 1e-9) * 10 ** (rng.uniform(-24, -2) / 20)
        start = int(t * SR)
        stop = min(n, start + len(note))
        out[start:stop] += note[: stop - start]
        # Per-frame energy of this note alone, and its f0 at each frame's last sample.
        padded = np.zeros(n)
        padded[start:stop] = note[: stop - start]
        energy = np.square(padded[: frames * hop]).reshape(frames, hop).sum(1)
        total += energy
        if "f0" in info:
            f0 = np.broadcast_to(np.asarray(info["f0"], dtype=float), note.shape)
            track = np.zeros(n)
            track[start:stop] = f0[: stop - start]
            f0_frames = track[hop - 1 : frames * hop : hop]
        else:
            f0_frames = np.zeros(frames)
        louder = energy > best
        best[louder] = energy[louder]
        best_f0[louder] = f0_frames[louder]
        gap = rng.uniform(0.05, 0.5) if name == "hit" else rng.uniform(0.2, 1.6)
        if rng.random() < 0.15:
            gap += rng.uniform(0.3, 1.0)  # some silence between phrases
        t += gap
    peak = np.abs(out).max()
    if peak > 0.95:
        out *= 0.95 / peak
    loud = np.sqrt(total / hop) * min(1.0, 0.95 / max(peak, 1e-12)) > SILENT_RMS
    voiced = (best_f0 > 0) & (best >= DOMINANCE * total) & loud
    f0_hz = np.where(voiced, best_f0, 0.0)
    return out.astype(np.float32), f0_hz.astype(np.float32), voiced.astype(np.float32)


def label_path(audio_path: str | Path) -> Path:
    """Where the f0 labels of ``audio_path`` live: ``NAME.f0.npz`` beside it."""
    p = Path(audio_path)
    return p.with_name(p.stem + ".f0.npz")


def write_labels(
    audio_path: str | Path, f0_hz: np.ndarray, voiced: np.ndarray, hop: int, sr: int
) -> Path:
    """Save per-frame f0 labels (``f0_hz``, ``voiced``, ``hop``, ``sr``) beside the audio."""
    path = label_path(audio_path)
    np.savez(
        path,
        f0_hz=np.asarray(f0_hz, np.float32),
        voiced=np.asarray(voiced, np.float32),
        hop=np.int64(hop),
        sr=np.int64(sr),
    )
    return path


def write_corpus(
    out_dir: str | Path,
    *,
    seed: int = 0,
    minutes: float = 10.0,
    families: tuple[str, ...] = tuple(FAMILIES),
    labels: bool = True,
) -> list[Path]:
    """Write the train and holdout sets; returns every audio path written, in order.

    With ``labels`` each ``NAME.wav`` gets ``NAME.f0.npz`` beside it: exact per-frame f0 of
    the dominant voice (see :func:`render_file_labelled`), hop :data:`LABEL_HOP`.

    ``families`` picks the material (default: the five of the default corpus; ``organ``,
    ``glide`` and ``clang`` are extra material for fine-tuning).
    """
    unknown = set(families) - set(ALL_FAMILIES)
    if unknown:
        raise ValueError(f"unknown families {sorted(unknown)}; known: {sorted(ALL_FAMILIES)}")
    out = Path(out_dir)
    written: list[Path] = []
    names = [*families, "mixed"]
    for split, mins, stream in (("train", minutes, 0), ("holdout", max(minutes / 10, 0.5), 1)):
        rng = np.random.default_rng([seed, stream])
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        n_files = max(1, round(mins * 60 / FILE_SECONDS))
        if split == "holdout":
            n_files = max(n_files, len(names))  # every family is evaluated
        for i in range(n_files):
            family = names[i % len(names)]
            audio, f0_hz, voiced = render_file_labelled(
                rng, None if family == "mixed" else family, mix=families
            )
            path = folder / f"{split}_{i:03d}_{family}.wav"
            sf.write(path, audio, SR, subtype="PCM_16")
            written.append(path)
            if labels:
                write_labels(path, f0_hz, voiced, LABEL_HOP, SR)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m models.corpus", description="Write the synthetic training corpus."
    )
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=10.0, help="train set length")
    parser.add_argument(
        "--families",
        default=",".join(FAMILIES),
        help=f"comma-separated, from {', '.join(ALL_FAMILIES)} (default: the first five)",
    )
    args = parser.parse_args(argv)
    families = tuple(f.strip() for f in args.families.split(",") if f.strip())
    try:
        paths = write_corpus(args.out_dir, seed=args.seed, minutes=args.minutes, families=families)
    except ValueError as e:
        parser.exit(2, f"error: {e}\n")
    print(f"wrote {len(paths)} files under {args.out_dir} (train/ and holdout/)")


if __name__ == "__main__":
    main()

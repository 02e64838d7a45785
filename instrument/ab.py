"""A/B: the same recorded gesture through two models, as two WAVs, a picture and a table.

    python -m instrument.ab --score SESSION/score.jsonl --models A.ts B.ts --out DIR
        [--patch NAME] [--seconds S] [--seed N]

Each model renders the score offline through the same engine (``run_instrument.py --offline``,
one process per model, so neither model's state or threads touch the other's), with the same
patch and seed: ``DIR/A-<name>.wav`` and ``DIR/B-<name>.wav``. Then

* ``DIR/ab.png``: the two spectrograms side by side on one colour scale, with their
  descriptors in the titles;
* ``DIR/ab.json`` and ``DIR/ab.md``: per model, length, level, loudness percentiles over
  50 ms windows, spectral centroid, pitch (median f0 of voiced frames, for models whose card
  declares a pitch dimension), clicks (sample-to-sample jumps above 0.5), and the multiscale
  spectral distance between the two renders.

The score is the one ``/sillage/record`` writes; its events are replayed exactly as played.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy import signal

from instrument.errors import SillageError
from instrument.paths import ROOT

WINDOW_S = 0.05
CLICK_JUMP = 0.5
MSS_FFTS = (2048, 1024, 512, 256, 128)


class ABError(SillageError, ValueError):
    """A score or model the A/B tool cannot use; the message names the fix."""


def render(model: Path, score: Path, out: Path, *, patch: str, seconds: float | None,
           seed: int) -> None:  # fmt: skip
    """One offline render of ``score`` through ``model`` (the engine's own CLI)."""
    length = score_seconds(score) if seconds is None else seconds
    cmd = [sys.executable, str(ROOT / "run_instrument.py"), "--offline", str(out),
           "--score", str(score), "--model", str(model), "--patch", patch,
           "--seed", str(seed), "--no-ui", "--seconds", str(length)]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0 or not out.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ABError(f"rendering {model.name} failed: {' / '.join(tail)}")


def score_seconds(score: Path, tail_s: float = 1.0) -> float:
    """The score's length: its last event's time plus ``tail_s`` to hear that event out."""
    last = 0.0
    for n, line in enumerate(score.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                last = max(last, float(json.loads(line)["t"]))
            except (ValueError, KeyError, TypeError) as e:
                raise ABError(f"{score}:{n} is not a score line ({e}); pass --seconds S") from e
    return last + tail_s


def declared_pitch(model: Path) -> bool:
    """Whether the model card (``MODEL.toml`` beside it) declares a pitch dimension."""
    card = model.with_suffix(".toml")
    if not card.is_file():
        return False
    try:
        latent = tomllib.loads(card.read_text(encoding="utf-8")).get("latent", {})
    except tomllib.TOMLDecodeError:
        return False
    return isinstance(latent.get("pitch_dim"), int)


def _windows(x: np.ndarray, n: int) -> np.ndarray:
    frames = len(x) // n
    return x[: frames * n].reshape(frames, n) if frames else np.zeros((0, n), x.dtype)


def describe(audio: np.ndarray, samplerate: int, *, pitch: bool) -> dict[str, Any]:
    """Descriptors of a mono render (see the module docstring)."""
    n = max(1, int(WINDOW_S * samplerate))
    w = _windows(audio, n)
    rms = np.sqrt(np.mean(w.astype(np.float64) ** 2, axis=1)) if len(w) else np.zeros(1)
    loud_db = 20 * np.log10(np.maximum(rms, 1e-10))
    spec = np.abs(np.fft.rfft(w * np.hanning(n), axis=1)) if len(w) else np.zeros((1, n // 2 + 1))
    freqs = np.fft.rfftfreq(n, 1 / samplerate)
    power = spec.sum(axis=1)
    audible = loud_db > -60
    centroid = (spec @ freqs) / np.maximum(power, 1e-12)
    out: dict[str, Any] = {
        "seconds": round(len(audio) / samplerate, 3),
        "rms_db": round(float(20 * np.log10(max(np.sqrt(np.mean(audio**2)), 1e-10))), 2),
        "loudness_db_p10_p50_p90": [
            round(float(v), 1) for v in np.percentile(loud_db, [10, 50, 90])
        ],
        "centroid_hz_median": round(float(np.median(centroid[audible])), 1)
        if audible.any()
        else None,
        "clicks": int(np.sum(np.abs(np.diff(audio)) > CLICK_JUMP)),
        "pitch_hz_median": None,
    }
    if pitch:
        from models.pitchtrack import label_f0

        f0, voiced = label_f0(audio, samplerate, 512)
        sure = voiced > 0.5
        if sure.any():
            out["pitch_hz_median"] = round(float(np.median(f0[sure])), 2)
    return out


def multiscale_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over FFT sizes of |log magnitude| + linear L1 distance (as models.losses, in numpy)."""
    n = min(len(a), len(b))
    total = 0.0
    for nfft in MSS_FFTS:
        _, _, sa = signal.stft(a[:n], nperseg=nfft, noverlap=nfft * 3 // 4)
        _, _, sb = signal.stft(b[:n], nperseg=nfft, noverlap=nfft * 3 // 4)
        ma, mb = np.abs(sa), np.abs(sb)
        lin = np.abs(ma - mb).sum() / max(np.abs(mb).sum(), 1e-9)
        log = np.mean(np.abs(np.log(ma + 1e-7) - np.log(mb + 1e-7)))
        total += lin + log
    return round(float(total) / len(MSS_FFTS), 4)


def spectrogram_png(out: Path, renders: Sequence[tuple[str, np.ndarray]], samplerate: int,
                    titles: Sequence[str]) -> None:  # fmt: skip
    """Side-by-side spectrograms (dB, one colour scale, log frequency) written to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    specs = []
    for _, audio in renders:
        f, t, s = signal.spectrogram(audio, samplerate, nperseg=2048, noverlap=1536)
        specs.append((f, t, 10 * np.log10(np.maximum(s, 1e-14))))
    top = max(float(np.percentile(s, 99.5)) for _, _, s in specs)
    fig, axes = plt.subplots(1, len(specs), figsize=(7 * len(specs), 4.8), sharey=True,
                             constrained_layout=True)  # fmt: skip
    image = None
    for ax, (f, t, s), title in zip(np.atleast_1d(axes), specs, titles, strict=True):
        keep = f >= 20
        image = ax.pcolormesh(t, f[keep], s[keep], shading="auto", cmap="magma",
                              vmin=top - 90, vmax=top)  # fmt: skip
        ax.set_yscale("log")
        ax.set_ylim(20, samplerate / 2)
        ax.set_xlabel("time (s)")
        ax.set_title(title, fontsize=9)
    np.atleast_1d(axes)[0].set_ylabel("frequency (Hz)")
    assert image is not None
    fig.colorbar(image, ax=axes, label="dB")
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _table(rows: dict[str, dict[str, Any]], distance: float) -> str:
    keys = ["seconds", "rms_db", "loudness_db_p10_p50_p90", "centroid_hz_median",
            "pitch_hz_median", "clicks"]  # fmt: skip
    names = list(rows)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k in keys:
        cells = ["—" if rows[n][k] is None else str(rows[n][k]) for n in names]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines.append(f"\nmultiscale spectral distance A↔B: {distance}")
    return "\n".join(lines)


def run_ab(score: Path, models: Sequence[Path], out: Path, *, patch: str = "default",
           seconds: float | None = None, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Render, describe and draw; returns what ``ab.json`` holds."""
    score, out = score.resolve(), out.resolve()  # the renders run from the repository root
    models = [m.resolve() for m in models]
    if not score.is_file():
        raise ABError(f"score {str(score)!r} not found (a /sillage/record session's score.jsonl)")
    if len(models) != 2:
        raise ABError(f"--models wants exactly two models, got {len(models)}")
    for m in models:
        if not m.is_file():
            raise ABError(f"model {str(m)!r} not found")
    out.mkdir(parents=True, exist_ok=True)
    renders: list[tuple[str, np.ndarray]] = []
    rows: dict[str, dict[str, Any]] = {}
    samplerate = 0
    for side, model in zip("AB", models, strict=True):
        wav = out / f"{side}-{model.stem}.wav"
        render(model, score, wav, patch=patch, seconds=seconds, seed=seed)
        audio, samplerate = sf.read(wav, dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        name = f"{side}: {model.stem}"
        rows[name] = describe(mono, samplerate, pitch=declared_pitch(model)) | {"wav": wav.name}
        renders.append((name, mono))
    distance = multiscale_distance(renders[0][1], renders[1][1])
    titles = [
        f"{name}  ·  {r['rms_db']} dB RMS  ·  centroid {r['centroid_hz_median']} Hz"
        + (f"  ·  f0 {r['pitch_hz_median']} Hz" if r["pitch_hz_median"] else "")
        for name, r in rows.items()
    ]
    spectrogram_png(out / "ab.png", renders, samplerate, titles)
    result = {"score": str(score), "patch": patch, "seed": seed, "models": [str(m) for m in models],
              "descriptors": rows, "multiscale_distance": distance}  # fmt: skip
    (out / "ab.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "ab.md").write_text(_table(rows, distance) + "\n")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m instrument.ab", description=__doc__.split("\n")[0])
    p.add_argument("--score", type=Path, required=True, help="score.jsonl of a recorded session")
    p.add_argument("--models", type=Path, nargs=2, required=True, metavar=("A.ts", "B.ts"))
    p.add_argument("--out", type=Path, required=True, help="folder for the WAVs, PNG and table")
    p.add_argument("--patch", default="default", help="patch both renders use (default: default)")
    p.add_argument("--seconds", type=float, help="render length (default: the score's + 1 s)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        result = run_ab(args.score, args.models, args.out, patch=args.patch,
                        seconds=args.seconds, seed=args.seed)  # fmt: skip
    except (ABError, OSError) as e:
        p.exit(1, f"ab: {e}\n")
    print(_table(result["descriptors"], result["multiscale_distance"]))
    print(f"wrote {args.out / 'ab.png'}, ab.json, ab.md and the two WAVs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

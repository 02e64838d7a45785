"""Playability of the default model, the old one against the new one in the same run (issue 10).

``python -m benchmarks.bench_playability [--old MODEL.ts] [--new MODEL.ts] [--holdout DIR]``

(a) **In tune:** MIDI notes 36–96 in a score played through the ``keyboard`` patch by the
    engine (offline render: the live decode loop; velocity 100, 0.45 s held) and, for
    reference, with the pitch latent simply held (``models.playability.in_tune``); f0 of each
    note's steady part against 12-TET, in cents: median and max of |error|. The keyboard's f0
    is the spectral peak near the note with a subharmonic check (:func:`spectral_f0`); YIN's
    figures are beside it. Only for
    models whose card declares a pitch dimension; the others get "not applicable".
(b) **No frame-rate buzz:** share of held random latents periodic at sr/ratio (or ½, 2, 3×).
(c) **Holds still:** latent std over time when encoding steady tones at 98–784 Hz.
(d) **Reconstruction:** held-out multiscale spectral distance (``models.evaluate``).
(e) **Speed:** decode real-time factor, one frame per call, one thread.
(f) **Polyphony:** CPU time of a decode-loop step with 1, 2, 4, 8 keyboard voices sounding.

The measurement functions are ``models.playability``'s (the model README's figures come from
the same code). Old model: ``models/legacy/sillage-v1.ts`` if present, else the default model
when its card has no pitch dimension. New model: the default model when its card declares one.
The held-out clips are ``runs/corpus/holdout`` (``python -m models.corpus runs/corpus``); when
absent a small synthetic holdout is written to a temporary folder.

Prints JSON and writes ``benchmarks/results/playability.json``. A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit  # noqa: E402

DEFAULT = ROOT / "models" / "default" / "sillage-default.ts"
LEGACY = ROOT / "models" / "legacy" / "sillage-v1.ts"
HOLDOUT = ROOT / "runs" / "corpus" / "holdout"
NOTES = tuple(range(36, 97))
GOALS = {
    "a_median_abs_cents": 5.0,
    "a_max_abs_cents": 25.0,
    "b_buzz_share": 0.05,
    "c_latent_std": 0.1,
    "d_mss_no_worse_than": 1.067,
}


def _playability() -> Any:
    try:
        import models.playability as pb
    except ImportError as exc:  # the model side ships it (issue 10)
        raise SystemExit(
            f"models.playability is missing ({exc}); it holds the measurements"
        ) from None
    return pb


def pick_models(old: str | None, new: str | None) -> tuple[Path | None, Path | None]:
    pb = _playability()
    default_pitched = DEFAULT.is_file() and "pitch_dim" in pb.card_latent(DEFAULT)
    old_p = Path(old) if old else LEGACY if LEGACY.is_file() else None
    if old_p is None and DEFAULT.is_file() and not default_pitched:
        old_p = DEFAULT
    new_p = Path(new) if new else DEFAULT if default_pitched else None
    return old_p, new_p


def keyboard_in_tune(
    path: Path, *, notes: tuple[int, ...] = NOTES, hold_s: float = 0.45, gap_s: float = 0.12
) -> dict[str, Any]:
    """(a) through the engine and the shipped ``keyboard`` patch: a score of notes at
    velocity 100, each held ``hold_s``, rendered offline (the live decode loop, one stream);
    the f0 of each note's steady part (after 0.15 s, before the release)."""
    from instrument.engine.loading import load_patch_for
    from instrument.engine.offline import render
    from instrument.engine.runtime import ModelRuntime
    from instrument.link.events import Event
    from instrument.metrics import Reporter

    pb = _playability()
    runtime = ModelRuntime(path)
    sr = runtime.info.samplerate
    step = hold_s + gap_s
    events = []
    for k, note in enumerate(notes):
        events.append(Event(k * step, "/midi/note", (1, note, 100)))
        events.append(Event(k * step + hold_s, "/midi/note", (1, note, 0)))
    reporter = Reporter(stream=io.StringIO())
    patch = load_patch_for("keyboard", runtime)
    y = render(runtime, patch, events, seconds=len(notes) * step, reporter=reporter)[:, 0]
    y = y.astype(np.float64)
    errors, yin_errors, sub_db = [], [], []
    for k, note in enumerate(notes):
        f = 440.0 * 2 ** ((note - 69) / 12)
        steady = y[int((k * step + 0.15) * sr) : int((k * step + hold_s) * sr)]
        f0, sub = spectral_f0(steady, sr, f)
        # A subharmonic within 12 dB of the peak: the note sounds an octave low.
        errors.append(1200 * np.log2(f0 / f) - (1200.0 if sub > -12.0 else 0.0))
        sub_db.append(sub)
        f0_yin, _ = pb.estimate_f0(steady, sr, fmin=0.5 * f, fmax=min(2 * f, 0.45 * sr))
        yin_errors.append(1200 * np.log2(f0_yin / f) if np.isfinite(f0_yin) else float("inf"))
    err = np.abs(np.array(errors))
    yin = np.abs(np.array(yin_errors))
    return {
        "through": "engine offline render, patches/keyboard.toml",
        "notes": [notes[0], notes[-1]],
        "velocity": 100,
        "measure": "spectral peak within ±6 semitones of the note (zero-padded, interpolated), "
        "with the level at half that frequency: a note played an octave low would show there",
        "median_abs_cents": round(float(np.median(err)), 3),
        "max_abs_cents": round(float(err.max()), 3),
        "worst_note": int(notes[int(np.argmax(err))]),
        "max_subharmonic_db": round(float(np.max(sub_db)), 1),
        "yin_median_abs_cents": round(float(np.median(yin)), 3),
        "yin_max_abs_cents": round(float(yin.max()), 3),
        "yin_octave_errors": [int(n) for n, e in zip(notes, yin, strict=True) if e > 600],
        "rejected_events": dict(reporter.counts),
        "errors_cents": [round(float(e), 2) for e in errors],
    }


def spectral_f0(y: np.ndarray, sr: int, f_hz: float) -> tuple[float, float]:
    """The strongest spectral peak within ±6 semitones of ``f_hz`` (Hann window, 8× zero
    padding, parabolic interpolation of the log magnitude), and the level at half its
    frequency relative to it in dB (about -20 or lower: no subharmonic, the note is not an
    octave low). YIN (``models.playability.estimate_f0``) can take the period twice too long
    above ~1.2 kHz when the model's noise branch is loud; this measure cannot."""
    n = len(y)
    n_fft = 1 << int(np.ceil(np.log2(8 * n)))
    mag = np.abs(np.fft.rfft(y * np.hanning(n), n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    band = np.flatnonzero((freqs > f_hz * 2**-0.5) & (freqs < f_hz * 2**0.5))
    i = int(band[np.argmax(mag[band])])
    a, b, c = np.log(mag[i - 1 : i + 2] + 1e-12)
    den = a - 2 * b + c
    shift = 0.5 * (a - c) / den if abs(den) > 1e-12 else 0.0
    f0 = float((i + np.clip(shift, -1, 1)) * sr / n_fft)
    half = np.abs(freqs - f0 / 2) < max(3 * sr / n, 2.0)
    sub = 20 * np.log10((mag[half].max() + 1e-12) / (mag[i] + 1e-12))
    return f0, float(sub)


def voice_cost(
    path: Path, *, voices: tuple[int, ...] = (1, 2, 4, 8), frames: int = 600
) -> dict[str, Any]:
    """Cost of polyphony: CPU time of one decode-loop step (this thread only, so other load on
    the machine does not count) with N keyboard voices all sounding, one torch thread."""
    from instrument.engine.loading import load_patch_for
    from instrument.engine.loop import DecodeLoop
    from instrument.engine.runtime import ModelRuntime
    from instrument.link.events import Event, ScoreSource
    from instrument.metrics import Reporter
    from instrument.paths import PATCH_DIR

    text = (PATCH_DIR / "keyboard.toml").read_text(encoding="utf-8")
    runtime = ModelRuntime(path, threads=1)
    frame_ms = runtime.info.frame_s * 1e3
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in voices:
            patch_path = Path(tmp) / f"keyboard-{n}.toml"
            patch_path.write_text(re.sub(r"(?m)^voices = \d+", f"voices = {n}", text, count=1))
            events = [Event(0.0, "/midi/note", (1, 48 + 5 * k, 100)) for k in range(n)]
            loop = DecodeLoop(
                runtime.fresh(), load_patch_for(patch_path, runtime), ScoreSource(events),
                reporter=Reporter(stream=io.StringIO()),
            )  # fmt: skip
            with torch.no_grad():
                for _ in range(50):
                    loop.step()
                times = np.empty(frames)
                for i in range(frames):
                    t0 = time.thread_time()
                    loop.step()
                    times[i] = time.thread_time() - t0
            ms = times * 1e3
            rows[str(n)] = {
                "mean_ms": round(float(ms.mean()), 3),
                "p99_ms": round(float(np.percentile(ms, 99)), 3),
                "share_of_one_core": round(float(ms.mean()) / frame_ms, 3),
            }
    one, most = rows[str(voices[0])]["mean_ms"], rows[str(voices[-1])]["mean_ms"]
    per_voice = (most - one) / max(voices[-1] - voices[0], 1)
    return {
        "frame_ms": round(frame_ms, 3),
        "voices": rows,
        "per_extra_voice_ms": round(per_voice, 3),
        # Half a core for the decode loop leaves room for the OS, the control process and a
        # busy neighbour (the README's loaded 2-core figures).
        "voices_within_half_a_core": int(
            max(1, 1 + (0.5 * frame_ms - one) // max(per_voice, 1e-6))
        ),
    }


def reconstruction(path: Path, holdout: Path) -> dict[str, Any]:
    from models.evaluate import evaluate

    try:
        rec = evaluate(path, holdout)["reconstruction"]
    except Exception as exc:  # a model family models.evaluate cannot load: say so, go on
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {k: rec[k] for k in ("segments", "segment_seconds", "mss_model") if k in rec}


def measure(path: Path, holdout: Path) -> dict[str, Any]:
    pb = _playability()
    latent = pb.card_latent(path)
    out: dict[str, Any] = {
        "model": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    }
    out["card_latent"] = latent
    t0 = time.perf_counter()
    if "pitch_dim" in latent:
        out["a_in_tune_keyboard"] = keyboard_in_tune(path)
        held = pb.in_tune(pb.fresh(path), latent, notes=NOTES)
        out["a_in_tune_held_latent"] = {k: v for k, v in held.items() if k != "errors_cents"}
    else:
        out["a_in_tune_keyboard"] = {
            "not_applicable": "the card declares no pitch dimension: notes cannot set a pitch"
        }
    buzz = pb.held_latent_buzz(pb.fresh(path), latent=latent or None)
    buzz["rows"] = [
        {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()}
        for r in buzz["rows"]
    ]
    out["b_held_latent_buzz"] = buzz
    out["c_latent_jitter"] = pb.latent_jitter(pb.fresh(path), latent=latent or None)
    out["d_reconstruction"] = reconstruction(path, holdout)
    if "pitch_dim" in latent:
        out["f_voice_cost"] = voice_cost(path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out["e_decode_speed_1_thread"] = pb.decode_speed(pb.fresh(path))
    finally:
        torch.set_num_threads(threads)
    out["seconds_to_measure"] = round(time.perf_counter() - t0, 1)
    return out


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The five headline figures, for the README and the issue note."""
    a = result.get("a_in_tune_keyboard", {})
    c = result.get("c_latent_jitter", {})
    return {
        "a_median_abs_cents": a.get("median_abs_cents"),
        "a_max_abs_cents": a.get("max_abs_cents"),
        "a_max_subharmonic_db": a.get("max_subharmonic_db"),
        "b_buzz_share": result["b_held_latent_buzz"]["share"],
        "c_latent_std_max": c.get("max_std_all_dims"),
        "c_latent_std_max_timbre": c.get("max_std_timbre_dims"),
        "d_mss": result["d_reconstruction"].get("mss_model"),
        "e_x_real_time_1_thread": result["e_decode_speed_1_thread"]["x_real_time"],
        "f_per_extra_voice_ms": result.get("f_voice_cost", {}).get("per_extra_voice_ms"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", help="old model (default: models/legacy/sillage-v1.ts)")
    parser.add_argument("--new", help="new model (default: the default model, if pitched)")
    parser.add_argument("--holdout", help=f"held-out audio folder (default {HOLDOUT})")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    old, new = pick_models(args.old, args.new)
    with tempfile.TemporaryDirectory() as tmp:
        holdout = Path(args.holdout) if args.holdout else HOLDOUT
        if not holdout.is_dir():
            from models.corpus import write_corpus

            print("writing a small synthetic holdout...", file=sys.stderr, flush=True)
            write_corpus(Path(tmp) / "corpus", seed=0, minutes=0.5)
            holdout = Path(tmp) / "corpus" / "holdout"
        results: dict[str, Any] = {}
        for label, path in (("old", old), ("new", new)):
            if path is None or not path.is_file():
                results[label] = {"missing": f"no {label} model ({path or 'none found'})"}
                continue
            print(f"measuring {label}: {path}", file=sys.stderr, flush=True)
            results[label] = measure(path, holdout)
            results[label]["summary"] = summary(results[label])
    emit(
        "playability",
        {
            "goals": GOALS,
            "holdout": str(holdout if args.holdout or HOLDOUT.is_dir() else "synthetic (0.5 min)"),
            "old": results["old"],
            "new": results["new"],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sculpt a training folder from rehearsals, map regions and audio folders, with provenance.

    python -m models.dataset OUT_DIR [--recording SESSION ...] [--word WORD --around S]
        [--region MAP.npz:NAME ...] [--audio DIR ...] [--exclude PATH ...]

Sources, any mix of them:

``--recording SESSION``
    A session folder written by ``/sillage/record`` (``audio.wav`` + ``score.jsonl``): whole,
    or with ``--word keep`` only the ``±--around`` seconds around each ``/sillage/tag keep``
    played during it (the tag's time is read from the score, where it was applied).
``--region MAP.npz:NAME`` or ``--region MAP.npz:NAME=X0,Y0,X1,Y1``
    The corpus audio behind the map points inside region ``NAME`` (saved in the map, or given
    as a box: a region just drawn in the UI is relayed, not yet saved): each point is one model
    frame of a corpus file at a known time; points of one file less than 0.25 s apart are
    joined into one segment (a map keeps a subsample of the frames, about one in nine).
    The corpus folder is read from the map (``--corpus DIR`` when it has moved).
``--audio DIR``
    Every audio file under a folder, whole.
``--exclude PATH``
    Leave out any source file under ``PATH`` (a file or a folder).

``OUT_DIR`` gets one WAV per segment (mono, ``--samplerate``) and ``manifest.jsonl``: per
segment its file, source file, start and end in the source, kind, tag or region, and the model
that was playing or that built the map. Overlapping segments of one source are merged, and
segments whose audio is identical to one already kept are dropped (counted in the summary).
Nothing in the sources is ever written, moved or deleted; ``OUT_DIR`` must be new or empty.
Train on it with ``python -m models.train OUT_DIR ...``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from models.data import find_audio, load_audio
from models.errors import EmptyDatasetError, ModelsError

MANIFEST = "manifest.jsonl"
SAMPLED_SOURCE = "<sampled>"  # ui.corpus's name for maps built without audio


class DatasetError(ModelsError):
    """A source that cannot be read, or an output folder that would overwrite something."""


@dataclass(frozen=True)
class Segment:
    """One stretch of one source file to copy into the dataset."""

    source: str
    start_s: float
    end_s: float | None  # None: to the end of the file
    kind: str  # recording | tag | region | audio
    label: str | None = None  # the tag's word or the region's name
    model: str | None = None


def _read_score(session: Path) -> list[dict[str, object]]:
    score = session / "score.jsonl"
    if not score.is_file():
        raise DatasetError(f"{str(session)!r} has no score.jsonl: is it a /sillage/record folder?")
    rows = []
    for n, line in enumerate(score.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            # A session cut by a crash may end in half a line: keep what came before.
            print(f"dataset: {score}:{n} is not JSON; ignored", file=sys.stderr)
    return rows


def _session_model(session: Path) -> str | None:
    """The model tagged during ``session`` (tags.jsonl lives beside session folders)."""
    tags = session.parent / "tags.jsonl"
    if not tags.is_file():
        return None
    for line in tags.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("session") == session.name and row.get("model"):
            return str(row["model"])
    return None


def recording_segments(session: Path, *, word: str | None, around_s: float) -> list[Segment]:
    """Whole ``audio.wav`` of a session, or ``±around_s`` around each tag ``word`` in it."""
    audio = session / "audio.wav"
    if not audio.is_file():
        raise DatasetError(f"recording {str(session)!r} has no audio.wav")
    model = _session_model(session)
    if word is None:
        return [Segment(str(audio), 0.0, None, "recording", None, model)]
    times = [
        float(row["t"])  # type: ignore[arg-type]
        for row in _read_score(session)
        if row.get("address") == "/sillage/tag" and list(row.get("args", []))[:1] == [word]  # type: ignore[call-overload]
    ]
    return [
        Segment(str(audio), max(0.0, t - around_s), t + around_s, "tag", word, model) for t in times
    ]


def region_segments(
    map_path: Path,
    region: str,
    *,
    corpus: Path | None = None,
    join_gap_s: float = 0.25,
    box: tuple[float, float, float, float] | None = None,
) -> list[Segment]:
    """The corpus audio behind the map points inside ``region``, as joined segments."""
    # The map file is read with numpy alone (models/ must not import mappings/); its format
    # is documented in mappings.latentmap (``sillage-map-1``).
    try:
        with np.load(map_path, allow_pickle=False) as data:
            m = {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise DatasetError(f"cannot read map {str(map_path)!r}: {e}") from e
    regions = {
        str(n): tuple(float(v) for v in box)
        for n, box in zip(m.get("region_names", ()), m.get("region_boxes", ()), strict=True)
    }
    if box is not None:
        regions[region] = box
    if region not in regions:
        known = ", ".join(sorted(regions)) or "none"
        raise DatasetError(f"map {str(map_path)!r} has no region {region!r} (regions: {known})")
    params = json.loads(str(m["params"]))
    folder = corpus or Path(str(params.get("corpus", {}).get("audio_dir", "")))
    model_info = params.get("model", {})
    hop_s = float(model_info.get("ratio", 256)) / float(model_info.get("samplerate", 48000))
    x0, y0, x1, y1 = regions[region]
    xy = m["xy"]
    inside = np.flatnonzero(
        (xy[:, 0] >= min(x0, x1)) & (xy[:, 0] <= max(x0, x1))
        & (xy[:, 1] >= min(y0, y1)) & (xy[:, 1] <= max(y0, y1))
    )  # fmt: skip
    if inside.size == 0:
        raise DatasetError(f"region {region!r} of {str(map_path)!r} holds no map point")
    files = [str(f) for f in m["source_files"]]
    if files == [SAMPLED_SOURCE]:
        raise DatasetError(
            f"map {str(map_path)!r} was built by sampling the decoder: there is no audio behind "
            "its points; build it from audio (python -m ui.map build --model M AUDIO_DIR)"
        )
    times: dict[int, list[float]] = defaultdict(list)
    for i in inside:
        times[int(m["source_index"][i])].append(float(m["time_s"][i]))
    name = str(model_info.get("name")) if model_info.get("name") else None
    segments = []
    for index, ts in sorted(times.items()):
        source = folder / files[index]
        if not source.is_file():
            raise DatasetError(
                f"the corpus file {str(source)!r} behind region {region!r} is missing; "
                "pass --corpus DIR where the map's audio now lives"
            )
        ts.sort()
        start = prev = ts[0]
        for t in [*ts[1:], None]:
            if t is not None and t - prev <= join_gap_s:
                prev = t
                continue
            segments.append(Segment(str(source), start, prev + hop_s, "region", region, name))
            if t is not None:
                start = prev = t
    return segments


def folder_segments(folder: Path) -> list[Segment]:
    return [Segment(str(p), 0.0, None, "audio") for p in find_audio(folder)]


def merge_overlaps(segments: Iterable[Segment]) -> list[Segment]:
    """Join segments of the same source, kind and label that overlap or touch."""
    out: list[Segment] = []
    key = lambda s: (s.source, s.kind, s.label or "", s.start_s)  # noqa: E731
    for s in sorted(segments, key=key):
        last = out[-1] if out else None
        if (
            last is not None
            and (last.source, last.kind, last.label) == (s.source, s.kind, s.label)
            and (last.end_s is None or s.start_s <= last.end_s)
        ):
            end = None if last.end_s is None or s.end_s is None else max(last.end_s, s.end_s)
            out[-1] = Segment(last.source, last.start_s, end, last.kind, last.label, last.model)
        else:
            out.append(s)
    return out


def _excluded(source: str, excludes: Sequence[Path]) -> bool:
    p = Path(source).resolve()
    return any(p == e or e in p.parents for e in excludes)


@dataclass
class Summary:
    segments: int
    seconds_by_kind: dict[str, float]
    duplicates_removed: int
    excluded: int
    skipped: list[str]

    def lines(self) -> list[str]:
        out = [f"{self.segments} segments"]
        for kind, s in sorted(self.seconds_by_kind.items()):
            out.append(f"  {kind:<10} {s / 60:6.2f} min")
        out.append(f"duplicates removed: {self.duplicates_removed}; excluded: {self.excluded}")
        out += [f"skipped: {why}" for why in self.skipped]
        return out


def build(
    out_dir: Path, segments: Sequence[Segment], *, samplerate: int, excludes: Sequence[Path] = (),
    min_seconds: float = 0.25,
) -> Summary:  # fmt: skip
    """Write the segments' audio and ``manifest.jsonl`` into ``out_dir`` (new or empty)."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise DatasetError(
            f"{str(out_dir)!r} is not empty: choose a new folder (nothing is ever overwritten)"
        )
    excl = [e.resolve() for e in excludes]
    kept = [s for s in merge_overlaps(segments) if not _excluded(s.source, excl)]
    excluded = len(merge_overlaps(segments)) - len(kept)
    seen: set[str] = set()
    rows: list[dict[str, object]] = []
    by_kind: dict[str, float] = defaultdict(float)
    duplicates = 0
    skipped: list[str] = []
    cache: dict[str, np.ndarray] = {}
    pending: list[tuple[str, np.ndarray, dict[str, object]]] = []
    for s in kept:
        if s.source not in cache:
            try:
                cache[s.source] = load_audio(s.source, samplerate=samplerate, channels=1)[0]
            except ModelsError as e:
                skipped.append(str(e))
                cache[s.source] = np.zeros(0, np.float32)
        audio = cache[s.source]
        a = round(s.start_s * samplerate)
        b = len(audio) if s.end_s is None else min(len(audio), round(s.end_s * samplerate))
        clip = audio[a:b]
        if len(clip) < min_seconds * samplerate:
            if len(audio):
                skipped.append(
                    f"{s.source} {s.start_s:.2f}-{s.end_s} s: shorter than {min_seconds} s"
                )
            continue
        digest = hashlib.sha1(clip.tobytes()).hexdigest()
        if digest in seen:
            duplicates += 1
            continue
        seen.add(digest)
        name = f"{len(pending):04d}-{s.kind}{'-' + s.label if s.label else ''}.wav"
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        row = asdict(s) | {
            "file": name,
            "end_s": round(a / samplerate + len(clip) / samplerate, 6),
            "seconds": round(len(clip) / samplerate, 6),
            "samplerate": samplerate,
            "sha1": digest,
        }
        pending.append((name, clip, row))
        by_kind[s.kind] += len(clip) / samplerate
    if not pending:
        raise EmptyDatasetError(
            "the dataset would be empty: no segment of at least "
            f"{min_seconds} s came from the sources given"
            + (f" ({'; '.join(skipped)})" if skipped else "")
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, clip, row in pending:
        sf.write(out_dir / name, clip, samplerate, subtype="FLOAT")
        rows.append(row)
    with open(out_dir / MANIFEST, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return Summary(len(rows), dict(by_kind), duplicates, excluded, skipped)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.dataset", description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="new (or empty) dataset folder")
    p.add_argument("--recording", type=Path, action="append", default=[], metavar="SESSION")
    p.add_argument("--word", help="only the moments tagged with this word in the recordings")
    p.add_argument("--around", type=float, default=2.0, metavar="S",
                   help="seconds kept before and after each tag (default 2)")  # fmt: skip
    p.add_argument("--region", action="append", default=[], metavar="MAP.npz:NAME")
    p.add_argument("--corpus", type=Path, help="where a map's corpus audio lives now")
    p.add_argument("--audio", type=Path, action="append", default=[], metavar="DIR")
    p.add_argument("--exclude", type=Path, action="append", default=[], metavar="PATH")
    p.add_argument("--samplerate", type=int, default=48000)
    p.add_argument("--min-seconds", type=float, default=0.25)
    args = p.parse_args(argv)
    if not (args.recording or args.region or args.audio):
        p.error("give at least one source: --recording, --region or --audio")
    try:
        segments: list[Segment] = []
        for session in args.recording:
            segments += recording_segments(session, word=args.word, around_s=args.around)
        for spec in args.region:
            map_file, sep, name = spec.rpartition(":")
            name, eq, coords = name.partition("=")
            if not sep or not map_file or not name:
                raise DatasetError(f"--region wants MAP.npz:NAME[=X0,Y0,X1,Y1], got {spec!r}")
            box = None
            if eq:
                try:
                    x0, y0, x1, y1 = (float(v) for v in coords.split(","))
                except ValueError:
                    raise DatasetError(f"--region box wants four numbers, got {coords!r}") from None
                box = (x0, y0, x1, y1)
            segments += region_segments(Path(map_file), name, corpus=args.corpus, box=box)
        for folder in args.audio:
            segments += folder_segments(folder)
        summary = build(args.out, segments, samplerate=args.samplerate, excludes=args.exclude,
                        min_seconds=args.min_seconds)  # fmt: skip
    except (ModelsError, OSError, ValueError) as e:
        p.exit(1, f"dataset: {e}\n")
    print(f"dataset written to {args.out} ({MANIFEST})")
    print("\n".join(summary.lines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

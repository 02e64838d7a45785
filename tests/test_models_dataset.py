"""``models.dataset``: a training folder from a recorded session, a map region and folders.

The session is recorded by the real engine (headless, clock-paced) over real OSC; the map is a
real ``sillage-map-1`` file over a corpus of two wav files whose content is known, so every
segment in the manifest can be checked sample for sample against its source.
"""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pythonosc.udp_client import SimpleUDPClient

from mappings.latentmap import LatentMap
from models.dataset import MANIFEST, DatasetError, main
from models.errors import EmptyDatasetError
from tests.test_osc_e2e import StateListener, launch, wait_ready

SR = 48000


def _manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / MANIFEST).read_text().splitlines()]


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _check_against_sources(out: Path) -> list[dict]:
    rows = _manifest(out)
    for row in rows:
        clip, sr = sf.read(out / row["file"], dtype="float32")
        source, source_sr = sf.read(row["source"], dtype="float32", always_2d=True)
        assert sr == source_sr == SR
        a = round(row["start_s"] * SR)
        np.testing.assert_array_equal(clip, source[a : a + len(clip), 0])
        assert abs(row["end_s"] - row["start_s"] - len(clip) / SR) < 1e-5
        assert row["seconds"] == pytest.approx(len(clip) / SR)
    return rows


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, mono_model: Path) -> Path:
    """About 1.5 s recorded live, tagged keep, drop, keep."""
    root = tmp_path_factory.mktemp("rehearsal")
    rec = root / "rec"
    proc = launch(mono_model, root / "live.wav", "--record-dir", str(rec))
    port = wait_ready(proc)
    listener = StateListener()
    client = SimpleUDPClient("127.0.0.1", port)
    try:
        client.send_message("/sillage/subscribe", listener.port)
        client.send_message("/sillage/record", 1)
        for i, (word, value) in enumerate((("keep", 2.0), ("drop", -2.0), ("keep", 1.0))):
            client.send_message("/sillage/latent/0", value)
            listener.wait_for("/sillage/state/latent", lambda a, v=value: abs(a[0] - v) < 0.01)
            client.send_message("/sillage/tag", word)
            # Later frames must have played before the next message (the tag is in the score).
            client.send_message("/sillage/latent/1", 0.5 * i + 0.25)
            listener.wait_for(
                "/sillage/state/latent", lambda a, v=0.5 * i + 0.25: abs(a[1] - v) < 0.01
            )
        client.send_message("/sillage/record", 0)
    finally:
        listener.close()
        client._sock.close()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    (folder,) = (p for p in rec.iterdir() if p.is_dir())
    return folder


def test_tagged_moments_of_a_recording(session: Path, tmp_path: Path) -> None:
    before = _digest(session.parent)
    out = tmp_path / "keep"
    assert main([str(out), "--recording", str(session), "--word", "keep", "--around", "0.05",
                 "--min-seconds", "0.01"]) == 0  # fmt: skip
    rows = _check_against_sources(out)
    score = [json.loads(line) for line in (session / "score.jsonl").read_text().splitlines()]
    tag_times = [r["t"] for r in score if r["address"] == "/sillage/tag" and r["args"] == ["keep"]]
    assert len(tag_times) == 2
    assert sorted(r["start_s"] for r in rows) == pytest.approx([t - 0.05 for t in tag_times])
    assert all(r["kind"] == "tag" and r["label"] == "keep" for r in rows)
    assert _digest(session.parent) == before  # nothing in the sources changed

    whole = tmp_path / "whole"
    assert main([str(whole), "--recording", str(session)]) == 0
    (row,) = _check_against_sources(whole)
    assert row["seconds"] == pytest.approx(sf.info(session / "audio.wav").duration)


@pytest.fixture()
def corpus_and_map(tmp_path: Path) -> tuple[Path, Path]:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.wav", "b.wav"):
        sf.write(corpus / name, rng.uniform(-0.5, 0.5, 2 * SR).astype(np.float32), SR,
                 subtype="FLOAT")  # fmt: skip
    hop = 256 / SR
    # 20 points per file, 0.1 s apart; those of a.wav between 0.5 s and 1.0 s sit in the region.
    times = np.tile(np.arange(20) * 0.1, 2).astype(np.float32)
    index = np.repeat([0, 1], 20).astype(np.int32)
    inside = (index == 0) & (times >= 0.45) & (times <= 1.05)
    xy = np.where(inside[:, None], [0.2, 0.2], [0.8, 0.8]) + rng.uniform(-0.05, 0.05, (40, 2))
    m = LatentMap(rng.normal(size=(40, 4)), xy.astype(np.float32), source_files=["a.wav", "b.wav"],
                  source_index=index, time_s=times,
                  params={"corpus": {"audio_dir": str(corpus)},
                          "model": {"name": "tiny", "ratio": 256, "samplerate": SR}},
                  regions={"breath": (0.1, 0.1, 0.3, 0.3), "empty": (0.4, 0.4, 0.5, 0.5)})  # fmt: skip
    path = tmp_path / "corpus.map.npz"
    m.save(path)
    assert hop > 0
    return corpus, path


def test_map_region_gives_the_audio_behind_its_points(
    corpus_and_map: tuple[Path, Path], tmp_path: Path
) -> None:
    corpus, map_path = corpus_and_map
    out = tmp_path / "region"
    assert main([str(out), "--region", f"{map_path}:breath"]) == 0
    (row,) = _check_against_sources(out)  # 0.5 … 1.0 s joined into one segment
    assert row["source"] == str(corpus / "a.wav")
    assert row["start_s"] == pytest.approx(0.5, abs=1e-6)
    assert row["end_s"] == pytest.approx(1.0 + 256 / SR, abs=1e-4)
    assert row["label"] == "breath" and row["model"] == "tiny"
    # A region drawn live (not saved in the map) comes as a box.
    drawn = tmp_path / "drawn"
    assert main([str(drawn), "--region", f"{map_path}:fresh=0.1,0.1,0.3,0.3"]) == 0
    (row2,) = _check_against_sources(drawn)
    assert row2["label"] == "fresh" and row2["start_s"] == row["start_s"]


def test_folders_exclusion_and_duplicates(corpus_and_map: tuple[Path, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    corpus, _ = corpus_and_map
    out = tmp_path / "folders"
    assert main([str(out), "--audio", str(corpus), "--audio", str(corpus),
                 "--exclude", str(corpus / "b.wav")]) == 0  # fmt: skip
    rows = _check_against_sources(out)
    assert [Path(r["source"]).name for r in rows] == ["a.wav"]
    printed = capsys.readouterr().out
    assert "excluded: 1" in printed and "audio" in printed and "min" in printed
    # The same audio under another name counts as a duplicate.
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "copy-of-a.wav").write_bytes((corpus / "a.wav").read_bytes())
    out2 = tmp_path / "dups"
    assert main([str(out2), "--audio", str(corpus), "--audio", str(twin)]) == 0
    assert len(_manifest(out2)) == 2
    assert "duplicates removed: 1" in capsys.readouterr().out


def test_bad_input_is_named_and_loses_nothing(
    corpus_and_map: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus, map_path = corpus_and_map
    from models.dataset import build, region_segments

    with pytest.raises(DatasetError, match="holds no map point"):
        region_segments(map_path, "empty")
    with pytest.raises(DatasetError, match=r"no region 'nope'.*breath"):
        region_segments(map_path, "nope")
    with pytest.raises(EmptyDatasetError, match="would be empty"):
        build(tmp_path / "none", [], samplerate=SR)
    assert not (tmp_path / "none").exists()
    # A name clash: the existing folder is left exactly as it was.
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("precious")
    with pytest.raises(SystemExit) as exc:
        main([str(taken), "--audio", str(corpus)])
    assert exc.value.code == 1
    assert "is not empty" in capsys.readouterr().err
    assert [p.name for p in taken.iterdir()] == ["mine.txt"]
    with pytest.raises(SystemExit):
        main([str(tmp_path / "x"), "--recording", str(tmp_path / "no-such-session")])
    assert "has no audio.wav" in capsys.readouterr().err
    # The map's corpus moved: the message says how to point at it.
    moved = tmp_path / "moved"
    corpus.rename(moved)
    with pytest.raises(DatasetError, match="pass --corpus DIR"):
        region_segments(map_path, "breath")
    assert region_segments(map_path, "breath", corpus=moved)[0].source == str(moved / "a.wav")

"""Recording survives a crash: kill -9 leaves files that scipy and soundfile read; takes never
share a folder; the events of the frame that stops a take are in its score."""

from __future__ import annotations

import json
import os
import signal
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
from pythonosc.udp_client import SimpleUDPClient
from scipy.io import wavfile

from instrument.control.live import wait_until
from instrument.engine.audio_out import ClockOutput
from instrument.engine.recorder import SessionRecorder
from instrument.engine.runtime import ModelRuntime
from instrument.engine.worker import DecodeWorker
from instrument.link.events import Event, EventQueue
from instrument.link.pipe import QueueSource
from instrument.patch import PatchContext, load_patch
from tests.test_osc_e2e import StateListener, launch, wait_ready
from tests.test_supervisor import _decode_pid


def _wav_seconds(path: Path) -> float:
    """What the header of a float32 WAV being written says it holds (0 before it exists)."""
    try:
        head = path.read_bytes()[:44]
    except OSError:
        return 0.0
    if len(head) < 44:
        return 0.0
    channels, rate = struct.unpack_from("<HI", head, 22)
    (size,) = struct.unpack_from("<I", head, 40)
    return size / (4 * channels * rate)


def test_two_takes_in_one_second_get_two_folders(tmp_path: Path) -> None:
    rec = SessionRecorder(tmp_path, samplerate=48000, channels=1)
    first = rec.start(0.0)
    rec.frame(np.zeros((64, 1), np.float32))
    rec.stop()
    second = rec.start(1.0)
    rec.stop()
    rec.close()
    assert first != second
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted(
        [first.name, second.name]
    )


def test_a_tag_sent_with_the_stop_is_in_the_score(mono_model: Path, tmp_path: Path) -> None:
    rt = ModelRuntime(mono_model)
    patch = load_patch("default", context=PatchContext(rt.info.latent_size, rt.info.samplerate))
    q = EventQueue()
    out = ClockOutput(samplerate=48000, channels=1, blocksize=256, capacity=8192)
    worker = DecodeWorker(
        rt, patch, out, prebuffer=256, source=QueueSource(q), record_dir=str(tmp_path)
    )
    q.put(Event(0.0, "/sillage/record", (1,)))
    worker.loop.step()
    q.put(Event(0.0, "/sillage/latent/0", (1.0,)))
    worker.loop.step()
    q.put(Event(0.0, "/sillage/tag", ("keep",)))
    q.put(Event(0.0, "/sillage/record", (0,)))
    worker.loop.step()
    assert worker.recorder is not None
    assert not worker.recorder.recording
    worker.recorder.close()
    (session,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    rows = [json.loads(line) for line in (session / "score.jsonl").read_text().splitlines()]
    assert [r["address"] for r in rows] == ["/sillage/latent/0", "/sillage/tag"]


def test_kill_9_mid_take_leaves_readable_files(mono_model: Path, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    proc = launch(mono_model, tmp_path / "o.wav", "--record-dir", str(rec), "--prebuffer", "1024")
    port = wait_ready(proc)
    listener = StateListener()
    client = SimpleUDPClient("127.0.0.1", port)
    try:
        client.send_message("/sillage/subscribe", listener.port)
        client.send_message("/sillage/record", 1)
        client.send_message("/sillage/latent/0", 1.0)
        listener.wait_for("/sillage/state/latent", lambda a: a[0] > 0.99)
        wav = lambda: next(rec.glob("*/audio.wav"), rec / "none")  # noqa: E731
        assert wait_until(lambda: _wav_seconds(wav()) > 0.5, timeout=30)
        client.send_message("/sillage/tag", "before-kill")
        listener.wait_for("/sillage/state/latent")  # a frame later: the tag is applied
        listener.messages.clear()
        listener.wait_for("/sillage/state/latent")
        before = _wav_seconds(wav())
        os.kill(_decode_pid(proc.pid), signal.SIGKILL)
        listener.wait_for("/sillage/state/error", lambda a: "DIED" in a[0])
        listener.wait_for("/sillage/state/error", lambda a: "is back" in a[0], timeout=60)
        # the restarted engine carries on recording, in a take of its own
        assert wait_until(lambda: len([p for p in rec.iterdir() if p.is_dir()]) == 2, 30)
    finally:
        listener.close()
        client._sock.close()
    take = sorted(p for p in rec.iterdir() if p.is_dir())[0]
    sr, audio = wavfile.read(take / "audio.wav")
    data, sr2 = sf.read(take / "audio.wav")
    assert sr == sr2 == 48000
    assert len(audio) == len(data) and len(audio) / sr >= before
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0.01
    rows = [json.loads(line) for line in (take / "score.jsonl").read_text().splitlines()]
    assert any(r["address"] == "/sillage/tag" for r in rows), rows
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    proc.stdout.close()
    assert proc.returncode == 0, rest

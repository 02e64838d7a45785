"""Decode worker scheduling: real-time only below the audio thread, a clean fallback otherwise."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from instrument.engine import priority

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux scheduling")


def _fake_audio(monkeypatch: pytest.MonkeyPatch, prio: int | None) -> list[int]:
    """Pretend the audio thread runs at ``prio``; record what the worker asks for."""
    asked: list[int] = []
    monkeypatch.setattr(priority, "audio_thread_priority", lambda: prio)

    def setscheduler(pid: int, policy: int, param: os.sched_param) -> None:
        asked.append(param.sched_priority)

    monkeypatch.setattr(os, "sched_setscheduler", setscheduler, raising=False)
    monkeypatch.setattr(priority, "_nice", lambda nice: "SCHED_OTHER nice 0")
    return asked


def test_auto_sits_ten_below_the_audio_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_audio(monkeypatch, 70)
    got = priority.raise_decode_thread("auto")
    assert asked == [60] and got == "SCHED_FIFO 60 (audio thread 70)"


def test_a_requested_priority_never_reaches_the_audio_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = _fake_audio(monkeypatch, 70)
    assert priority.raise_decode_thread("95") == "SCHED_FIFO 69 (audio thread 70)"
    assert asked == [69]


def test_no_realtime_audio_thread_means_no_realtime_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = _fake_audio(monkeypatch, None)
    got = priority.raise_decode_thread("auto")
    assert asked == [] and got.startswith("SCHED_OTHER") and "no real-time audio thread" in got


def test_a_low_audio_priority_still_leaves_the_worker_below_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = _fake_audio(monkeypatch, 10)  # JACK2's default
    assert priority.raise_decode_thread("auto") == "SCHED_FIFO 1 (audio thread 10)"
    assert asked == [1]


def test_no_room_below_a_priority_one_audio_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_audio(monkeypatch, 1)
    assert asked == [] and "no room below it" in priority.raise_decode_thread("auto")


def test_a_refused_priority_falls_back_to_nice_and_says_how_to_grant_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_audio(monkeypatch, 70)

    def refuse(pid: int, policy: int, param: os.sched_param) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse, raising=False)
    got = priority.raise_decode_thread("auto")
    assert got.startswith("SCHED_OTHER nice 0 (real-time refused: Operation not permitted")
    assert "rtprio" in got


def test_off_keeps_nice_only(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_audio(monkeypatch, 70)
    assert priority.raise_decode_thread("off").endswith("(--rt-priority off)") and asked == []


@linux_only
def test_real_threads_worker_below_audio_and_loaders_back_to_normal() -> None:
    """With a real SCHED_FIFO thread standing in for the audio callback (where allowed)."""
    ready, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def audio() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(30))
        except PermissionError as exc:
            errors.append(exc)
        ready.set()
        done.wait(30)

    t = threading.Thread(target=audio, daemon=True)
    t.start()
    ready.wait(10)
    if errors:
        done.set()
        pytest.skip("real-time scheduling not permitted here")
    result: dict[str, str] = {}

    def worker() -> None:
        result["got"] = priority.raise_decode_thread("auto", nice=0)
        result["worker"] = priority.describe_here()

        def loader() -> None:
            result["inherited"] = priority.describe_here()
            priority.normal_here()
            result["loader"] = priority.describe_here()

        side = threading.Thread(target=loader)
        side.start()
        side.join()

    w = threading.Thread(target=worker)
    w.start()
    w.join(10)
    done.set()
    t.join(10)
    assert result["got"] == "SCHED_FIFO 20 (audio thread 30)"
    assert result["worker"] == "SCHED_FIFO 20"
    # SCHED_RESET_ON_FORK: threads the worker starts (loaders, pool threads) start normal
    assert result["inherited"] == "SCHED_OTHER 0"
    assert result["loader"] == "SCHED_OTHER 0"

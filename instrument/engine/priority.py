"""Scheduling of the decode worker: real-time where the OS allows it, always below the audio.

Under load a SCHED_OTHER decode worker wakes late, so the ring must hold more audio (latency).
As SCHED_FIFO it preempts every ordinary program, but it must never outrank the audio
callback: nn~ run as root lets its inference threads inherit a priority above JACK's audio
thread and then drops out (720 xruns in 30 s, measured here). So the worker takes the audio
thread's priority minus :data:`BELOW_AUDIO` (JACK's own advice for its clients' helper threads),
and only when there *is* a real-time audio thread in this process to stay under (JACK's client
thread and PortAudio's ALSA callback thread both live here; a clock output has none).

The worker sets ``SCHED_RESET_ON_FORK`` with it, so nothing it starts inherits real-time
priority (Linux resets it for threads as well as processes: tested): model loaders, recorder,
and the intra-op pool threads of ``--threads 2`` run SCHED_OTHER, never near the audio. Loader
threads also call :func:`normal_here` (for a kernel without the flag).

The allowance is root, ``CAP_SYS_NICE`` or an ``rtprio`` limit (``@audio - rtprio 95`` in
``/etc/security/limits.d/audio.conf`` and the user in group ``audio``, as JACK recommends).
Otherwise the worker falls back to ``nice`` and the status line says so.
"""

from __future__ import annotations

import contextlib
import os
import sys

BELOW_AUDIO = 10
"""How far below the audio thread's real-time priority the decode worker runs."""

GRANT_HINT = (
    "grant it with `@audio - rtprio 95` in /etc/security/limits.d/audio.conf and the user in "
    "group audio (JACK's recommendation), or CAP_SYS_NICE"
)


def _policy_name(policy: int) -> str:
    for name in ("SCHED_FIFO", "SCHED_RR", "SCHED_OTHER", "SCHED_BATCH", "SCHED_IDLE"):
        if getattr(os, name, None) == policy:
            return name
    return f"policy {policy}"


def thread_priorities() -> dict[int, tuple[int, int]]:
    """Every thread of this process: ``{tid: (policy, rt_priority)}`` (Linux; {} elsewhere)."""
    out: dict[int, tuple[int, int]] = {}
    if not sys.platform.startswith("linux"):
        return out
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return out
    for tid in tids:
        with contextlib.suppress(OSError):
            policy = os.sched_getscheduler(tid) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
            out[tid] = (policy, os.sched_getparam(tid).sched_priority)
    return out


def audio_thread_priority() -> int | None:
    """The highest SCHED_FIFO/RR priority among this process's other threads (the audio
    callback's), or None when no thread here runs real-time."""
    me = threading_native_id()
    rt = {getattr(os, "SCHED_FIFO", -1), getattr(os, "SCHED_RR", -1)}
    prios = [p for tid, (pol, p) in thread_priorities().items() if pol in rt and tid != me]
    return max(prios) if prios else None


def threading_native_id() -> int:
    import threading

    return threading.get_native_id()


def _nice(nice: int) -> str:
    """Lower this process's nice value (root or CAP_SYS_NICE); describe what it is now."""
    if nice:
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    try:
        now = os.getpriority(os.PRIO_PROCESS, 0)
    except (OSError, AttributeError):
        return "SCHED_OTHER"
    return f"SCHED_OTHER nice {now}"


def raise_decode_thread(mode: str = "auto", *, nice: int = -10) -> str:
    """Give the calling thread (the decode worker) the best scheduling allowed below the audio.

    Parameters
    ----------
    mode : str
        ``"auto"``: SCHED_FIFO at the audio thread's priority minus :data:`BELOW_AUDIO` (at least
        1, still below it: JACK2's default priority is 10) when a real-time audio thread runs in
        this process; ``"off"``: nice only; a number:
        that SCHED_FIFO priority, lowered below the audio thread's if it is not already.
    nice : int
        The fallback (and the process's nice value either way).

    Returns
    -------
    str
        What the worker got and why, for the status line
        (e.g. ``"SCHED_FIFO 60 (audio thread 70)"``).
    """
    fallback = _nice(nice)
    if mode == "off":
        return f"{fallback} (--rt-priority off)"
    if not hasattr(os, "sched_setscheduler"):
        return f"{fallback} (no real-time scheduling API on {sys.platform})"
    audio = audio_thread_priority()
    if audio is None:
        return f"{fallback} (no real-time audio thread here to stay under)"
    if mode == "auto":
        want = max(audio - BELOW_AUDIO, 1 if audio >= 2 else 0)
    else:
        try:
            want = int(mode)
        except ValueError:
            return f"{fallback} (--rt-priority {mode!r} is not auto, off or a number)"
        want = min(want, audio - 1)
    if want < 1:
        return f"{fallback} (audio thread at real-time priority {audio}: no room below it)"
    policy = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)
    try:
        os.sched_setscheduler(0, policy, os.sched_param(want))
    except (PermissionError, OSError) as exc:
        return f"{fallback} (real-time refused: {exc.strerror or exc}; {GRANT_HINT})"
    return f"SCHED_FIFO {want} (audio thread {audio})"


def normal_here() -> None:
    """Back to SCHED_OTHER for the calling thread (a side thread the worker started: it must not
    compete with the worker at real-time priority). Always allowed."""
    if hasattr(os, "sched_setscheduler"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def describe_here() -> str:
    """The calling thread's policy and priority, e.g. ``"SCHED_FIFO 60"``."""
    if not hasattr(os, "sched_getscheduler"):
        return "unknown"
    policy = os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
    return f"{_policy_name(policy)} {os.sched_getparam(0).sched_priority}"

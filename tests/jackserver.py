"""A real JACK server with the dummy driver, started and stopped by the test that needs it.

The dummy driver is clock-paced like a sound card, so underruns measured against it are real.
Each server gets a unique name, so tests (and other programs) never share one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def jack_server(*, samplerate: int = 48000, period: int = 256) -> Iterator[str]:
    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.skip("jackd not installed (make test installs jackd2: apt-get install jackd2)")
    import jack

    jack.set_error_function(lambda msg: None)  # the probe below fails until jackd is up: quiet
    jack.set_info_function(lambda msg: None)
    name = f"sillage-test-{os.getpid()}-{time.monotonic_ns() % 100000}"
    proc = subprocess.Popen(
        [jackd, "-n", name, "-d", "dummy", "-r", str(samplerate), "-p", str(period)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        client = None
        while client is None:
            if proc.poll() is not None:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                raise RuntimeError(f"jackd exited with {proc.returncode}: {out[-500:]}")
            try:
                client = jack.Client("sillage-probe", servername=name, no_start_server=True)
            except jack.JackOpenError:
                if time.monotonic() > deadline:
                    raise RuntimeError("jackd did not come up within 15 s") from None
                time.sleep(0.1)
        client.close()
        yield name
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

"""The Makefile's set-up logic on platforms this machine is not: macOS, Intel macOS, unknown.

The real ``make`` and the real ``tools/system-deps.sh`` run with a PATH that holds only a few
basic tools and a stub ``uname``: no dpkg, no apt-get, no dnf, as on a Mac. Nothing is
installed; the checks are that set-up does not stop where it should go on, and stops with a
clear message where it must.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("bash", "sh", "make", "id", "grep", "cat", "env", "echo", "test", "true", "false")


def _stub_path(tmp_path: Path, system: str, machine: str) -> dict[str, str]:
    stub = tmp_path / "bin"
    stub.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        if found is not None:
            (stub / tool).symlink_to(found)
    uname = stub / "uname"
    uname.write_text(f'#!/bin/sh\ncase "$1" in -m) echo {machine} ;; *) echo {system} ;; esac\n')
    uname.chmod(0o755)
    return dict(os.environ, PATH=str(stub))


def _make(env: dict[str, str], *targets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *targets],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_macos_setup_needs_no_debian_tool(tmp_path: Path) -> None:
    env = _stub_path(tmp_path, "Darwin", "arm64")
    assert shutil.which("dpkg-query", path=env["PATH"]) is None
    done = _make(env, "system-deps", "system-deps-test", "torch-check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "apt-get" not in done.stdout + done.stderr
    assert "brew install jack pure-data" in done.stdout  # the optional parts, named


def test_intel_mac_is_told_why_torch_cannot_install(tmp_path: Path) -> None:
    env = _stub_path(tmp_path, "Darwin", "x86_64")
    done = _make(env, "torch-check")
    assert done.returncode != 0
    assert "no wheels for Intel Macs" in done.stdout


@pytest.mark.parametrize("purpose", ["run", "test"])
def test_unknown_platform_gets_a_message_and_goes_on(tmp_path: Path, purpose: str) -> None:
    env = _stub_path(tmp_path, "FreeBSD", "amd64")
    done = subprocess.run(
        ["bash", str(ROOT / "tools" / "system-deps.sh"), purpose],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "knows no package manager for this platform (FreeBSD)" in done.stdout
    if purpose == "test":
        assert "not found: jackd" in done.stdout

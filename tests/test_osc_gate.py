"""The strict OSC gate, fed datagram bytes (as python-osc's own tests do)."""

from __future__ import annotations

import logging
import struct
import time
from pathlib import Path

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from instrument.control.osc_gate import Gate, GateLimits, Refused, quiet_python_osc
from instrument.metrics import Reporter

ME = ("127.0.0.1", 5000)


def msg(address: str, *args: object) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def bundle(timetag: float | None, *dgrams: bytes) -> bytes:
    """A bundle of raw datagrams (None: "immediately"); nested bundles are datagrams too."""
    ntp = 1 if timetag is None else int((timetag + 2208988800) * 2**32)
    out = b"#bundle\x00" + struct.pack(">Q", ntp)
    for d in dgrams:
        out += struct.pack(">i", len(d)) + d
    return out


def refused(gate: Gate, data: bytes, client: tuple[str, int] = ME) -> str:
    with pytest.raises(Refused) as info:
        gate.check(data, client)
    return info.value.kind


def test_good_messages_and_bundles_pass() -> None:
    gate = Gate()
    gate.check(msg("/sillage/latent", 0.5, 1.0, -2.0), ME)
    gate.check(msg("/sillage/panic"), ME)
    gate.check(msg("/sillage/model", "osc"), ME)
    gate.check(msg("/riot/1/acc", 0.1, 0.2, 0.3), ME)  # a patch address: the patch decides
    gate.check(bundle(None, msg("/sillage/latent/0", 1.0), msg("/sillage/tag", "k")), ME)
    gate.check(bundle(time.time() + 0.2, msg("/sillage/latent/0", 1.0)), ME)
    assert gate.passed == 6


def test_truncated_odd_and_unknown_are_refused_not_repaired() -> None:
    gate = Gate()
    good = msg("/sillage/latent/0", 1.0)
    assert refused(gate, good[:-2]) == "truncated"  # python-osc would zero-pad it
    panic_odd = b"/sillage/panic\x00\x00,xyz\x00\x00\x00\x00"  # unknown tags: not a bare panic
    assert refused(gate, panic_odd) == "type"
    assert refused(gate, b"/sillage/panic\x00\x00") == "malformed"  # no type tags
    assert refused(gate, msg("/sillage/nope", 1.0)) == "unknown_address"
    assert refused(gate, good + b"\x00\x00\x00\x01") == "malformed"  # bytes after the args
    assert refused(gate, b"/sillage/latent") == "malformed"  # unterminated address
    many = b"/x\x00\x00," + b"q" * 1000 + b"\x00" * 3
    assert refused(gate, many) in ("type", "too_many")


def test_limits_size_depth_count_and_timetags() -> None:
    gate = Gate(GateLimits(max_packet_bytes=512, max_depth=2, max_messages=4))
    assert refused(gate, msg("/sillage/latent", *([0.5] * 200))) == "too_big"
    deep = msg("/sillage/latent/0", 1.0)
    for _ in range(3):
        deep = bundle(None, deep)
    assert refused(gate, deep) == "too_deep"
    assert refused(gate, bundle(None, *[msg("/sillage/panic")] * 5)) == "too_many"
    far = bundle(time.time() + 3 * 365 * 86400, msg("/sillage/panic"))
    assert refused(gate, far) == "timetag"
    cut = bundle(None, msg("/sillage/panic"))
    assert refused(gate, cut[:-4]) == "malformed"


def test_rate_limit_per_sender_and_allowlist() -> None:
    gate = Gate(GateLimits(rate_per_s=10.0, burst=5.0), allow=["10.0.0.0/24"])
    good = msg("/sillage/latent/0", 1.0)
    for _ in range(5):
        gate.check(good, ("10.0.0.7", 9000))
    assert refused(gate, good, ("10.0.0.7", 9000)) == "rate"
    gate.check(good, ("10.0.0.8", 9000))  # another sender has its own bucket
    assert refused(gate, good, ("192.168.1.5", 9000)) == "not_allowed"
    gate.check(good, ("127.0.0.1", 9000))  # loopback always


def test_python_osc_warnings_are_counted_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = Reporter(interval_s=60.0)
    quiet_python_osc(reporter)
    from pythonosc.osc_message import OscMessage

    OscMessage(b"/x\x00\x00,qqqq\x00\x00\x00")  # python-osc logs one warning per odd tag
    assert reporter.counts["osc_library"] == 4
    assert capsys.readouterr().err.count("python-osc") == 1
    logging.getLogger("other").warning("still printed")  # not ours: left alone


def test_far_future_check_uses_wall_time() -> None:
    gate = Gate(clock=lambda: 1_000_000.0)
    ntp = int((1_000_000.0 + 0.5 + 2208988800) * 2**32)
    near = b"#bundle\x00" + struct.pack(">Q", ntp)
    m = msg("/sillage/panic")
    gate.check(near + struct.pack(">i", len(m)) + m, ME)


def test_files_over_osc_only_from_the_allowed_folders(tmp_path: Path) -> None:
    from instrument.control.osc_files import FileRules
    from instrument.errors import OSCInputError

    models = tmp_path / "models"
    models.mkdir()
    (models / "mine.ts").write_bytes(b"x" * 10)
    (models / "huge.ts").write_bytes(b"x" * 2048)
    (models / "escape.ts").symlink_to("/etc/passwd")
    secret = tmp_path / "secret.ts"
    secret.write_bytes(b"x")
    rules = FileRules(model_dirs=(models,), max_model_bytes=1024)
    assert rules.resolve("model", "mine") == str(models / "mine.ts")
    assert rules.resolve("model", str(models / "mine.ts")) == str(models / "mine.ts")

    def answer(name: str) -> str:
        with pytest.raises(OSCInputError) as info:
            rules.resolve("model", name)
        return str(info.value).replace(repr(name[:120]), "NAME")

    # outside, missing, a symlink out, a climb out: one answer, whatever exists
    same = {answer(n) for n in ("/etc/passwd", "/etc/nope", "escape", "../secret", str(secret))}
    assert len(same) == 1 and "--allow-paths" in same.pop()
    assert "over the" in answer("huge")
    assert FileRules(model_dirs=(models,), allow_paths=True).resolve("model", str(secret))

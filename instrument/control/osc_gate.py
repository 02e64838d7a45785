"""A strict gate in front of python-osc: each datagram is checked before it is parsed.

python-osc is lenient where a stage needs strict: it zero-pads truncated numbers, drops type
tags it does not know (so a malformed ``/sillage/panic`` still panics), logs a warning per
unknown tag (1,000 lines for one packet of 1,000 tags), and runs bundles timetagged years
ahead at once. The gate walks the bytes once, with limits on every count, and says why a
datagram is refused; only datagrams that pass reach python-osc. Its cost is bounded by the
datagram size (``max_packet_bytes``), and refusals are cheap: the sender allowlist and the
per-sender rate limit come before any parsing, the address of a plain message is checked
against the table before its arguments.

It runs on the OSC server's thread (control process).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from instrument.metrics import Reporter
from instrument.protocol import PREFIX, lookup

BUNDLE = b"#bundle\x00"
NTP_DELTA_S = 2208988800  # 1900 → 1970
#: Type tags the engine takes (OSC 1.0 plus the usual 1.1 ones). Arrays, MIDI, RGBA and
#: chars are refused rather than half-understood.
TAG_SIZES = {"i": 4, "f": 4, "h": 8, "d": 8, "t": 8, "s": -1, "S": -1, "b": -2}
NO_DATA_TAGS = frozenset("TFNI")


@dataclass(frozen=True)
class GateLimits:
    """What one datagram may hold, and how fast one sender may send.

    ``future_s``: a bundle timetagged further ahead than this is refused (nearer ones are run
    at once: the engine applies events at the next frame). ``rate_per_s`` and ``burst``: a
    token bucket per sender (host and port).
    """

    max_packet_bytes: int = 8192
    max_depth: int = 4
    max_messages: int = 64
    max_args: int = 256
    future_s: float = 1.0
    rate_per_s: float = 2000.0
    burst: float = 2000.0
    max_senders: int = 256


class Refused(Exception):
    """Why a datagram does not pass; ``kind`` for the counters."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _string_end(data: bytes, start: int, end: int) -> int:
    """Index after the padded OSC string starting at ``start``; Refused if it is cut."""
    nul = data.find(b"\x00", start, end)
    if nul < 0:
        raise Refused("malformed", "a string is not terminated")
    after = (nul + 4) & ~3
    if after > end:
        raise Refused("malformed", "a string's padding is cut")
    return after


class Gate:
    """Checks datagrams for one OSC port.

    Parameters
    ----------
    limits : GateLimits
    allow : iterable of str, optional
        Sender hosts or networks (``192.168.1.20``, ``10.0.0.0/24``, a host name); None lets
        every sender that reaches the socket in. Loopback is always allowed.
    clock : callable
        Wall time in seconds since 1970 (bundle timetags are wall time).
    """

    def __init__(
        self,
        limits: GateLimits | None = None,
        *,
        allow: Iterable[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits or GateLimits()
        self.allow = None if allow is None else parse_allow(allow)
        self.clock = clock
        self._buckets: OrderedDict[tuple[str, int], list[float]] = OrderedDict()
        self.passed = 0
        self.refused = 0

    # --- before parsing ---------------------------------------------------------------------
    def sender_ok(self, client: tuple[str, int]) -> None:
        """Allowlist and rate limit; Refused when the sender may not send now."""
        if self.allow is not None and not _allowed(client[0], self.allow):
            raise Refused(
                "not_allowed",
                f"OSC from {client[0]} refused: not in --allow (add it: --allow {client[0]})",
            )
        lim = self.limits
        now = time.monotonic()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= lim.max_senders:
                self._buckets.popitem(last=False)  # the least recently heard sender
            bucket = self._buckets[client] = [lim.burst, now]
        else:
            self._buckets.move_to_end(client)
        tokens = min(lim.burst, bucket[0] + (now - bucket[1]) * lim.rate_per_s)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            raise Refused(
                "rate",
                f"{client[0]}:{client[1]} sends more than {lim.rate_per_s:.0f} packets/s; "
                "the excess is dropped",
            )
        bucket[0] = tokens - 1.0

    # --- the bytes --------------------------------------------------------------------------
    def check(self, data: bytes, client: tuple[str, int]) -> None:
        """Raise :class:`Refused` unless ``data`` is one well-formed OSC packet within the
        limits, from a sender that may send now."""
        try:
            self.sender_ok(client)
            if len(data) > self.limits.max_packet_bytes:
                raise Refused(
                    "too_big",
                    f"packet of {len(data)} bytes from {client[0]} (the limit is "
                    f"{self.limits.max_packet_bytes})",
                )
            count = [0]
            if data.startswith(BUNDLE):
                self._bundle(data, 0, len(data), 1, count)
            else:
                self._message(data, 0, len(data), count)
        except Refused:
            self.refused += 1
            raise
        self.passed += 1

    def _bundle(self, data: bytes, start: int, end: int, depth: int, count: list[int]) -> None:
        lim = self.limits
        if depth > lim.max_depth:
            raise Refused("too_deep", f"bundles nested deeper than {lim.max_depth}")
        if end - start < 16:
            raise Refused("malformed", "a bundle without its timetag")
        (ntp,) = struct.unpack_from(">Q", data, start + 8)
        if ntp != 1:  # 1 means "immediately"
            when = (ntp >> 32) - NTP_DELTA_S + (ntp & 0xFFFFFFFF) / 2**32
            ahead = when - self.clock()
            if ahead > lim.future_s:
                raise Refused(
                    "timetag",
                    f"a bundle timetagged {ahead:.1f} s ahead (at most {lim.future_s:g} s; "
                    "send it nearer the time, or timetag 1 for 'now')",
                )
        i = start + 16
        while i < end:
            if i + 4 > end:
                raise Refused("malformed", "a bundle element's size is cut")
            (size,) = struct.unpack_from(">i", data, i)
            i += 4
            if size <= 0 or size % 4 or i + size > end:
                raise Refused("malformed", f"a bundle element of {size} bytes does not fit")
            if data.startswith(BUNDLE, i):
                self._bundle(data, i, i + size, depth + 1, count)
            else:
                self._message(data, i, i + size, count)
            i += size

    def _message(self, data: bytes, start: int, end: int, count: list[int]) -> None:
        lim = self.limits
        count[0] += 1
        if count[0] > lim.max_messages:
            raise Refused("too_many", f"more than {lim.max_messages} messages in one packet")
        if start >= end or data[start] != 0x2F:  # "/"
            raise Refused("malformed", "an OSC message starts with '/'")
        i = _string_end(data, start, end)
        address = data[start : data.index(b"\x00", start)]
        if address.startswith(PREFIX.encode() + b"/") and not address.startswith(
            PREFIX.encode() + b"/learn/"
        ):
            try:  # the cheap early drop: an address outside the table is not parsed further
                lookup(address.decode("ascii"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise Refused("unknown_address", f"{address[:60]!r}: {exc}") from None
        if i >= end or data[i] != 0x2C:  # ","
            raise Refused(
                "malformed",
                f"{address[:60].decode(errors='replace')}: no type tag string (send OSC 1.0 "
                "messages with type tags)",
            )
        j = _string_end(data, i, end)
        tags = data[i + 1 : data.index(b"\x00", i)].decode("ascii", errors="replace")
        if len(tags) > lim.max_args:
            raise Refused("too_many", f"{len(tags)} arguments (at most {lim.max_args})")
        for tag in tags:
            if tag in NO_DATA_TAGS:
                continue
            size = TAG_SIZES.get(tag)
            if size is None:
                raise Refused(
                    "type",
                    f"{address[:60].decode(errors='replace')}: type tag {tag!r} is not taken "
                    "(i f h d t s b T F N I are)",
                )
            if size == -1:
                if j >= end:
                    raise Refused("truncated", "a string argument is cut")
                j = _string_end(data, j, end)
            elif size == -2:
                if j + 4 > end:
                    raise Refused("truncated", "a blob's size is cut")
                (n,) = struct.unpack_from(">i", data, j)
                j += 4 + ((n + 3) & ~3)
                if n < 0 or j > end:
                    raise Refused("truncated", "a blob is cut")
            else:
                j += size
                if j > end:
                    raise Refused(
                        "truncated",
                        f"{address[:60].decode(errors='replace')}: argument {tag!r} is cut "
                        "(a truncated packet is refused, never zero-padded)",
                    )
        if j != end:
            raise Refused("malformed", f"{end - j} bytes after the last argument")


def parse_allow(
    hosts: Iterable[str],
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``--allow`` entries as networks (a host is a /32); names are resolved once, here."""
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for host in hosts:
        host = host.strip()
        if not host:
            continue
        try:
            nets.append(ipaddress.ip_network(host, strict=False))
            continue
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_UDP)
        except OSError:
            raise ValueError(
                f"--allow {host!r}: not an IP address, a network (10.0.0.0/24) or a known host name"
            ) from None
        for info in infos:
            nets.append(ipaddress.ip_network(str(info[4][0]), strict=False))
    return nets


def _allowed(host: str, nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    return any(ip in net for net in nets)


class LibraryLogFilter(logging.Filter):
    """python-osc's own warnings (it logs on the root logger, one line per unknown type tag),
    counted and rate-limited through the reporter instead of printed; other records pass."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__()
        self.reporter = reporter

    def filter(self, record: logging.LogRecord) -> bool:
        if "pythonosc" not in record.pathname:
            return True
        self.reporter.reject("osc_library", f"python-osc: {record.getMessage()[:200]}")
        return False


def quiet_python_osc(reporter: Reporter) -> None:
    """Route python-osc's log records through ``reporter`` (once per process)."""
    for logger in (logging.getLogger(), logging.getLogger("pythonosc")):
        if not any(isinstance(f, LibraryLogFilter) for f in logger.filters):
            logger.addFilter(LibraryLogFilter(reporter))

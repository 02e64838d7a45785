"""State sender: subscribers get labels and regions on subscribe and on every change, over UDP."""

from __future__ import annotations

import socket

from pythonosc.osc_message import OscMessage

from instrument.control.state_out import StateSender


def _recv(sock: socket.socket) -> tuple[str, list]:
    data, _ = sock.recvfrom(65536)
    msg = OscMessage(data)
    return msg.address, list(msg.params)


def test_labels_and_regions_are_relayed_and_replayed_on_subscribe() -> None:
    sender = StateSender(lambda: [])
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for s in (a, b):
            s.bind(("127.0.0.1", 0))
            s.settimeout(5)
        client = ("127.0.0.1", 55555)  # the sender's source port: never used for replies
        sender.on_side("/sillage/subscribe", (a.getsockname()[1],), client)
        sender.on_side("/sillage/label", ("breath", 0.25, 0.5), client)
        sender.on_side("/sillage/region", ("drums", 0.8, 0.7, 0.95, 0.85), client)
        assert _recv(a) == ("/sillage/state/label", ["breath", 0.25, 0.5])
        address, args = _recv(a)
        assert address == "/sillage/state/region" and args[0] == "drums"
        assert [round(v, 3) for v in args[1:]] == [0.8, 0.7, 0.95, 0.85]
        # a late subscriber gets what exists already
        sender.on_side("/sillage/subscribe", (b.getsockname()[1],), client)
        got = {_recv(b)[0] for _ in range(2)}
        assert got == {"/sillage/state/label", "/sillage/state/region"}
        sender.on_side("/sillage/region/delete", ("drums",), client)
        assert _recv(a) == ("/sillage/state/region/delete", ["drums"])
        assert _recv(b) == ("/sillage/state/region/delete", ["drums"])
        assert "drums" not in sender.regions
    finally:
        a.close()
        b.close()
        sender._sock.close()

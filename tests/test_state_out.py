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
    sender = StateSender(lambda: []).start()  # relays go out on the sender's thread
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
        sender.close()


def test_subscribers_and_labels_are_capped_and_cost_the_osc_thread_nothing() -> None:
    from instrument.control.state_out import MAX_LABELS, MAX_NAME, MAX_SUBSCRIBERS

    sender = StateSender(lambda: [])  # not started: nothing may be sent from on_side itself
    refused: list[str] = []
    sender.on_refuse = lambda kind, text: refused.append(kind)
    client = ("127.0.0.1", 55555)
    for port in range(1000, 3000):
        sender.on_side("/sillage/subscribe", (port,), client)
    assert len(sender.subscribers) == MAX_SUBSCRIBERS
    assert ("127.0.0.1", 2999) in sender.subscribers  # the newest stay, the stalest went
    for k in range(MAX_LABELS + 10):
        sender.on_side("/sillage/label", (f"l{k}", 0.5, 0.5), client)
    sender.on_side("/sillage/label", ("x" * (MAX_NAME + 1), 0.5, 0.5), client)
    assert len(sender.labels) == MAX_LABELS
    assert refused.count("subscribers") == 2000 - MAX_SUBSCRIBERS and "labels" in refused
    assert sender.sent == 0
    sender._sock.close()

"""The artist's loop over OSC, with no shell: record, tag, dataset, fine-tune, play, undo, A/B.

The real engine (headless, clock-paced), real OSC sockets, real child processes for the
dataset and the fine-tune (a tiny model for a few seconds), and a real model swap. Waits are
on state messages, each bounded.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from pythonosc.udp_client import SimpleUDPClient

from models.testing import make_tiny_model
from tests.test_osc_e2e import StateListener, launch, wait_ready

LONG_S = 600.0  # bounds for waits that include a training job (nice 10: it yields to the rest)


class Since:
    """Waits on messages received after a mark (StateListener.wait_for also sees old ones)."""

    def __init__(self, listener: StateListener) -> None:
        self.listener = listener
        self.mark = 0

    def now(self) -> Since:
        with self.listener._cond:
            self.mark = len(self.listener.messages)
        return self

    def wait(self, address: str, predicate=lambda a: True, timeout: float = 30.0) -> tuple:  # type: ignore[no-untyped-def]
        found: list[tuple] = []

        def check() -> bool:
            for a, args in self.listener.messages[self.mark :]:
                if a == address and predicate(args):
                    found.append(args)
                    return True
            return False

        with self.listener._cond:
            ok = self.listener._cond.wait_for(check, timeout)
            periodic = ("latent", "level", "underruns", "decode_ms", "xy")
            seen = [m for m in self.listener.messages[self.mark :]
                    if not m[0].endswith(periodic)]  # fmt: skip
            assert ok, f"no new {address} matching in {timeout} s; since the mark: {seen[-12:]}"
        return found[0]

    def all(self, address: str) -> list[tuple]:
        return [args for a, args in self.listener.messages[self.mark :] if a == address]


@pytest.fixture()
def rehearsal(tmp_path: Path):  # type: ignore[no-untyped-def]
    model = make_tiny_model(tmp_path / "tiny.ts", latent_size=4, ratio=64)
    rec, user = tmp_path / "rec", tmp_path / "user"
    proc = launch(model, tmp_path / "live.wav", "--record-dir", str(rec), "--user-models",
                  str(user), "--prebuffer", "4096", "--train-map", "none")  # fmt: skip
    port = wait_ready(proc)
    listener = StateListener()
    client = SimpleUDPClient("127.0.0.1", port)
    client.send_message("/sillage/subscribe", listener.port)
    try:
        yield model, client, listener, rec, user
    finally:
        listener.close()
        client._sock.close()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_record_tag_dataset_train_swap_undo_ab(rehearsal) -> None:  # type: ignore[no-untyped-def]
    model, client, listener, _rec, user = rehearsal
    send = client.send_message
    since = Since(listener)
    listener.wait_for("/sillage/state/model", lambda a: a[0] == "tiny")
    send("/sillage/record", 1)
    for i, value in enumerate((1.5, -1.5, 1.0)):
        send("/sillage/latent/0", value)
        listener.wait_for("/sillage/state/latent", lambda a, v=value: abs(a[0] - v) < 0.01)
        send("/sillage/tag", "keep")
        send("/sillage/latent/1", 0.3 * i + 0.2)
        listener.wait_for("/sillage/state/latent", lambda a, v=0.3 * i + 0.2: abs(a[1] - v) < 0.01)
    send("/sillage/record", 0)
    listener.wait_for("/sillage/state/latent", lambda a: True)

    since.now()
    send("/sillage/train", ["nothing-yet", 0.05, "x", 1])  # no such dataset: said, nothing runs
    err = since.wait("/sillage/state/error", lambda a: "no dataset" in a[0])
    assert "/sillage/dataset NAME WORD" in err[0]

    since.now()
    send("/sillage/dataset", ["kept", ""])  # whole recordings (the tagged cut needs 4 s of audio)
    ds = since.wait("/sillage/state/dataset", lambda a: a[0] == "kept", LONG_S)
    dataset = Path(ds[1])
    assert (dataset / "manifest.jsonl").is_file()
    assert any(dataset.glob("*.wav"))

    send("/sillage/train", ["kept", 0.05, "mine", 1])
    done = since.wait("/sillage/state/train", lambda a: a[0] in ("done", "error"), LONG_S)
    assert done[0] == "done", done
    assert Path(done[4]).name == "mine-v1.ts" and (user / "mine-v1.ts").is_file()
    steps = [a for a in since.all("/sillage/state/train") if a[0] == "train"]
    assert steps, "no progress was relayed"
    # swap 1: the fine-tuned version plays, then undo goes back, and A/B toggles.
    since.wait("/sillage/state/model", lambda a: a[0] == "mine-v1", LONG_S)
    history = since.wait("/sillage/state/history", lambda a: len(a) == 2)
    assert Path(history[0]) == model and Path(history[1]).name == "mine-v1.ts"
    since.now()
    send("/sillage/model/undo", [])
    since.wait("/sillage/state/model", lambda a: a[0] == "tiny", 60)
    assert since.wait("/sillage/state/history", lambda a: len(a) == 1)[0] == str(model)
    since.now()
    send("/sillage/model/undo", [])  # nothing earlier: said, nothing changes
    since.wait("/sillage/state/error", lambda a: "no earlier model" in a[0])

    since.now()
    send("/sillage/model", str(user / "mine-v1.ts"))
    since.wait("/sillage/state/model", lambda a: a[0] == "mine-v1", 60)
    since.now()
    send("/sillage/ab", [])
    since.wait("/sillage/state/model", lambda a: a[0] == "tiny", 60)
    since.now()
    send("/sillage/ab", [])
    since.wait("/sillage/state/model", lambda a: a[0] == "mine-v1", 60)
    since.now()
    send("/sillage/model/history", [])
    versions = since.wait("/sillage/state/versions", lambda a: len(a) >= 1)
    assert [Path(v).name for v in versions] == ["mine-v1.ts"]

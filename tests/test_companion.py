"""The generated docs and companion patches: up to date, and wired as intended.

The Max patch is checked as a graph (boxes and patchlines), the way Max itself reads it:
every control must reach ``[udpsend]`` through a ``[prepend <address>]`` (or a message box
that is the address), every state address must reach a display. The Pd patch is checked
here for structure; ``test_pd.py`` runs it in real Pure Data.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import pytest

from instrument import companion
from instrument.protocol import (
    ADDRESSES,
    DEFAULT_OSC_PORT,
    DEFAULT_STATE_PORT,
    INPUTS,
    OUTPUTS,
    Address,
)

ROOT = Path(__file__).resolve().parent.parent

DISPLAYS = {"flonum", "number", "multislider", "message", "slider"}


# --- Max graph helpers -------------------------------------------------------------------


class MaxGraph:
    """A .maxpat read as a graph: boxes by id, patchlines as edges."""

    def __init__(self, text: str) -> None:
        data = json.loads(text)
        self.patcher = data["patcher"]
        self.boxes: dict[str, dict[str, Any]] = {}
        for entry in self.patcher["boxes"]:
            box = entry["box"]
            assert box["id"] not in self.boxes, f"duplicate box id {box['id']}"
            self.boxes[box["id"]] = box
        self.out: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
        for entry in self.patcher["lines"]:
            line = entry["patchline"]
            (src, outlet), (dst, inlet) = line["source"], line["destination"]
            self.out[src].append((outlet, dst, inlet))

    def find(self, pred: Any) -> list[str]:
        return [i for i, b in self.boxes.items() if pred(b)]

    def text(self, box_id: str) -> str:
        return str(self.boxes[box_id].get("text", ""))

    def with_text(self, text: str) -> list[str]:
        return self.find(lambda b: b.get("text") == text)

    def path(self, start: str, goal: Any, outlet: int | None = None) -> list[str] | None:
        """Shortest box path from ``start`` (optionally from one outlet) to a box ``goal`` accepts."""
        prev: dict[str, str | None] = {start: None}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if node != start and goal(self.boxes[node]):
                chain = [node]
                while prev[chain[-1]] is not None:
                    chain.append(prev[chain[-1]])  # type: ignore[arg-type]
                return chain[::-1]
            for o, dst, _ in self.out[node]:
                if node == start and outlet is not None and o != outlet:
                    continue
                if dst not in prev:
                    prev[dst] = node
                    queue.append(dst)
        return None


def _is_udpsend(box: dict[str, Any]) -> bool:
    return str(box.get("text", "")).startswith("udpsend ")


@pytest.fixture(scope="module")
def control() -> MaxGraph:
    return MaxGraph((ROOT / companion.MAX_CONTROL).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sensors() -> MaxGraph:
    return MaxGraph((ROOT / companion.MAX_SENSORS).read_text(encoding="utf-8"))


# --- up to date, deterministic -------------------------------------------------------------


def test_generated_files_equal_what_the_generator_makes() -> None:
    stale = companion.stale(ROOT)
    assert not stale, f"out of date: {stale}; run: python -m instrument.companion"


def test_check_cli_passes_on_this_checkout() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "instrument.companion", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_check_lists_files_that_differ(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert companion.main(["--root", str(tmp_path)]) == 0
    assert companion.main(["--check", "--root", str(tmp_path)]) == 0
    doc = tmp_path / companion.OSC_MD
    doc.write_text(doc.read_text(encoding="utf-8") + "hand edit\n", encoding="utf-8")
    (tmp_path / companion.PD_CONTROL).unlink()
    capsys.readouterr()
    assert companion.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert str(companion.OSC_MD) in err and str(companion.PD_CONTROL) in err
    assert str(companion.MAX_CONTROL) not in err


def test_output_is_deterministic_and_undated() -> None:
    first, second = companion.render_all(), companion.render_all()
    assert first == second
    for rel, text in first.items():
        assert not re.search(r"20\d\d-\d\d-\d\d", text), f"{rel} contains a date"


def test_latent_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="latent_count must be at least 1, got 0"):
        companion.render_all(latent_count=0)


# --- docs ----------------------------------------------------------------------------------


def test_osc_md_documents_every_address() -> None:
    doc = companion.render_osc_md()
    for a in ADDRESSES:
        assert f"`{a.path}`" in doc, a.path
        if a.example:
            assert f"`{a.example}`" in doc, a.example
        if a.range is not None:
            assert f"{a.range[0]:g} .. {a.range[1]:g}" in doc
    # Inputs are documented before state, groups in table order.
    positions = [doc.index(f"`{a.path}`") for a in INPUTS]
    assert positions == sorted(positions)
    assert doc.index("## Inputs") < doc.index("## State") < doc.index(f"`{OUTPUTS[0].path}`")
    assert "<i> (0-based)" not in doc, "a bare <i> renders as italics in Markdown"


def test_max_pd_md_names_every_pd_receive() -> None:
    doc = companion.render_max_pd_md()
    for a in INPUTS:
        base = a.path[: -len("/<i>")] if a.path.endswith("/<i>") else a.path
        assert f"`{companion.pd_name(base)}" in doc
    for a in OUTPUTS:
        assert f"`{companion.pd_name(a.path)}`" in doc
    assert "## Play from Max / Pure Data" in doc


# --- Max: structure ------------------------------------------------------------------------


@pytest.mark.parametrize("rel", [companion.MAX_CONTROL, companion.MAX_SENSORS])
def test_maxpat_is_valid_patcher_json(rel: Path) -> None:
    graph = MaxGraph((ROOT / rel).read_text(encoding="utf-8"))
    p = graph.patcher
    assert p["fileversion"] == 1 and {"major", "minor", "revision"} <= set(p["appversion"])
    assert len(p["rect"]) == 4
    for box in graph.boxes.values():
        assert re.fullmatch(r"obj-\d+", box["id"])
        assert box["maxclass"]
        assert len(box["patching_rect"]) == 4
        assert box["numoutlets"] == len(box.get("outlettype", [])), box
        if box["maxclass"] == "newobj":
            assert box["text"].strip(), box
    for entry in p["lines"]:
        line = entry["patchline"]
        (src, outlet), (dst, inlet) = line["source"], line["destination"]
        assert src in graph.boxes and dst in graph.boxes, line
        assert 0 <= outlet < graph.boxes[src]["numoutlets"], line
        assert 0 <= inlet < graph.boxes[dst]["numinlets"], line


def test_each_latent_slider_reaches_udpsend_through_its_prepend(control: MaxGraph) -> None:
    (send,) = control.with_text(f"udpsend 127.0.0.1 {DEFAULT_OSC_PORT}")
    sliders = control.find(
        lambda b: b["maxclass"] == "slider" and str(b.get("varname", "")).startswith("latent")
    )
    assert len(sliders) == companion.DEFAULT_LATENT_COUNT
    for i in range(companion.DEFAULT_LATENT_COUNT):
        (slider,) = [s for s in sliders if control.boxes[s]["varname"] == f"latent{i}"]
        box = control.boxes[slider]
        assert box["floatoutput"] == 1
        assert (box["min"], box["min"] + box["size"]) == (-8.0, 8.0)
        chain = control.path(slider, _is_udpsend)
        assert chain is not None and chain[-1] == send, f"slider {i} does not reach udpsend"
        assert [control.text(b) for b in chain[1:-1]] == [f"prepend /sillage/latent/{i}"]


def test_every_input_address_reaches_udpsend(control: MaxGraph) -> None:
    for a in INPUTS:
        path = a.path.replace("/<i>", "/0")
        formatters = control.find(
            lambda b, path=path: (
                b.get("text") == f"prepend {path}"
                or (b["maxclass"] == "message" and b.get("text") == path)
            )
        )
        assert formatters, f"{a.path} ({a.group}) has no control in the Max patch"
        for f in formatters:
            assert control.path(f, _is_udpsend) is not None, f"{a.path} is not wired to udpsend"
            # ... and something the performer touches feeds it.
            feeders = [s for s, outs in control.out.items() if any(d == f for _, d, _ in outs)]
            assert feeders, f"nothing feeds {a.path}"


def test_play_controls_are_the_expected_widgets(control: MaxGraph) -> None:
    def widget_for(path: str) -> set[str]:
        fed = _fed(control)
        formatters = [
            i
            for i, b in control.boxes.items()
            if b.get("text") in (f"prepend {path}", path) and i in fed
        ]
        return {control.boxes[s]["maxclass"] for f in formatters for s in _upstream(control, f)}

    assert "pictslider" in widget_for("/sillage/xy")
    assert "slider" in widget_for("/sillage/gain_db")
    assert "button" in widget_for("/sillage/panic")
    assert "multislider" in widget_for("/sillage/latent")
    assert "toggle" in widget_for("/sillage/record")
    assert "textedit" in widget_for("/sillage/model")
    tags = {
        control.boxes[s].get("text") for s in _upstream(control, _prepend(control, "/sillage/tag"))
    }
    assert {"keep", "drop"} <= tags


def _fed(graph: MaxGraph) -> set[str]:
    return {d for outs in graph.out.values() for _, d, _ in outs}


def _upstream(graph: MaxGraph, box_id: str) -> set[str]:
    seen: set[str] = set()
    todo = [box_id]
    while todo:
        node = todo.pop()
        for src, outs in graph.out.items():
            if src not in seen and any(d == node for _, d, _ in outs):
                seen.add(src)
                todo.append(src)
    return seen


def _prepend(graph: MaxGraph, path: str) -> str:
    (box,) = graph.with_text(f"prepend {path}")
    return box


def test_subscribe_is_sent_on_load(control: MaxGraph) -> None:
    (lb,) = control.with_text("loadbang")
    chain = control.path(lb, lambda b: b.get("text") == "prepend /sillage/subscribe")
    assert chain is not None
    assert control.text(chain[1]) == str(DEFAULT_STATE_PORT)
    assert control.path(chain[-1], _is_udpsend) is not None


def test_state_flows_from_udpreceive_to_displays(control: MaxGraph) -> None:
    (recv,) = control.with_text(f"udpreceive {DEFAULT_STATE_PORT}")
    routes = [d for _, d, _ in control.out[recv] if control.text(d).startswith("route ")]
    assert len(routes) == 1
    route = routes[0]
    assert control.text(route).split()[1:] == [a.path for a in OUTPUTS]
    assert control.boxes[route]["numoutlets"] == len(OUTPUTS) + 1
    for k, a in enumerate(OUTPUTS):
        chain = control.path(route, lambda b: b["maxclass"] in DISPLAYS, outlet=k)
        assert chain is not None, f"{a.path} reaches no display"
    latent_out = [a.path for a in OUTPUTS].index("/sillage/state/latent")
    kinds = {control.boxes[d]["maxclass"] for o, d, _ in control.out[route] if o == latent_out}
    assert "multislider" in kinds


def test_latent_count_is_a_parameter() -> None:
    graph = MaxGraph(companion.render_max_control(latent_count=3))
    sliders = graph.find(
        lambda b: b["maxclass"] == "slider" and str(b.get("varname", "")).startswith("latent")
    )
    assert len(sliders) == 3
    assert graph.with_text("prepend /sillage/latent/2")
    assert not graph.with_text("prepend /sillage/latent/3")
    pd = companion.render_pd_control(latent_count=3)
    assert "oscformat sillage latent 2;" in pd and "oscformat sillage latent 3;" not in pd


def test_an_address_added_to_the_table_shows_up_everywhere() -> None:
    extra_in = Address(
        "/sillage/sensor/intensity",
        "f",
        "Gesture intensity.",
        range=(0.0, 1.0),
        default=0.0,
        example="/sillage/sensor/intensity 0.5",
        group="sensors",
    )
    extra_out = Address(
        "/sillage/state/intensity", "f", "Intensity played.", direction="out", group="state"
    )
    table = (*ADDRESSES, extra_in, extra_out)
    files = companion.render_all(table)
    assert "`/sillage/sensor/intensity`" in files[companion.OSC_MD]
    assert "`/sillage/state/intensity`" in files[companion.OSC_MD]
    graph = MaxGraph(files[companion.MAX_CONTROL])
    assert graph.path(_prepend(graph, "/sillage/sensor/intensity"), _is_udpsend)
    (route,) = graph.find(lambda b: str(b.get("text", "")).startswith("route /sillage/state"))
    assert "/sillage/state/intensity" in graph.text(route).split()
    pd = files[companion.PD_CONTROL]
    assert "r sillage-sensor-intensity;" in pd and "oscformat sillage sensor intensity;" in pd
    assert "s sillage-state-intensity;" in pd


def test_sensor_patch_forwards_riot_and_hi_to_sillage(sensors: MaxGraph) -> None:
    (recv,) = sensors.with_text(f"udpreceive {companion.RIOT_PORT}")
    (send,) = sensors.with_text(f"udpsend 127.0.0.1 {DEFAULT_OSC_PORT}")
    # Raw forward: receive → gate → send, untouched.
    assert sensors.path(recv, lambda b: b["id"] == send) is not None
    # Direct mapping: accelerometer x → latent 0.
    (acc,) = sensors.with_text("prepend /sillage/latent/0")
    assert sensors.path(recv, lambda b: b["id"] == acc) is not None
    (hi,) = sensors.with_text("hi")
    chain = sensors.path(hi, _is_udpsend)
    assert chain is not None
    assert "prepend /sillage/xy" in [sensors.text(b) for b in chain]


# --- Pd: structure -------------------------------------------------------------------------

VANILLA = {
    "loadbang",
    "t",
    "f",
    "sel",
    "list",
    "oscformat",
    "oscparse",
    "netsend",
    "netreceive",
    "r",
    "s",
    "route",
    "pack",
    "unpack",
    "hsl",
    "vsl",
    "tgl",
    "bng",
}


def _pd_items(text: str) -> tuple[list[str], list[tuple[int, int, int, int]]]:
    items: list[str] = []
    conns: list[tuple[int, int, int, int]] = []
    for raw in re.split(r"(?<!\\);\n", text):
        line = raw.strip()
        if line.startswith("#X connect"):
            a, b, c, d = (int(v) for v in line.split()[2:6])
            conns.append((a, b, c, d))
        elif line.startswith("#X "):
            items.append(line)
    return items, conns


def test_pd_patch_uses_only_vanilla_objects_and_valid_connections() -> None:
    text = (ROOT / companion.PD_CONTROL).read_text(encoding="utf-8")
    assert text.startswith("#N canvas ")
    items, conns = _pd_items(text)
    for item in items:
        words = item.split()
        if words[1] == "obj":
            assert words[4] in VANILLA, f"not in the vanilla set used here: {item}"
    for src, _, dst, _ in conns:
        assert 0 <= src < len(items) and 0 <= dst < len(items)
    assert any("netsend -u -b" in i for i in items)
    assert any("netreceive -u -b" in i for i in items)
    for a in INPUTS:
        base = a.path.replace("/<i>", "/0")
        name = companion.pd_name(base)
        assert any(i.endswith(f" r {name}") for i in items), f"no [r {name}]"
        fmt = "oscformat " + " ".join(base.strip("/").split("/"))
        assert any(i.endswith(fmt) for i in items), fmt
    for a in OUTPUTS:
        assert any(i.endswith(f" s {companion.pd_name(a.path)}") for i in items), a.path

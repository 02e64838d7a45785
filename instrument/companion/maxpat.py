"""The Max patchers (.maxpat JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from instrument.companion.table import (
    _GENERATED,
    DEFAULT_LATENT_COUNT,
    GROUP_TITLES,
    HOST,
    RIOT_PORT,
    _base,
    _example_args,
    _find,
    _first_sentence,
    _fmt,
    _groups,
    _is_indexed,
    _numeric,
    _quoted_words,
    _state_range,
    _tail,
)
from instrument.protocol import (
    ADDRESSES,
    DEFAULT_OSC_PORT,
    DEFAULT_STATE_PORT,
    PREFIX,
    Address,
)

# --------------------------------------------------------------------------------------
# Max patchers
# --------------------------------------------------------------------------------------

_APPVERSION = {"major": 8, "minor": 5, "revision": 5, "architecture": "x64", "modernui": 1}

#: (numinlets, outlettype) of the Max objects used, by object name or maxclass.
_MAX_IO: dict[str, tuple[int, list[str]]] = {
    "udpsend": (1, []),
    "udpreceive": (1, [""]),
    "prepend": (1, [""]),
    "loadbang": (1, ["bang"]),
    "pak": (2, [""]),
    "/": (2, ["float"]),
    "scale": (6, [""]),
    "tosymbol": (1, [""]),
    "gate": (2, [""]),
    "metro": (2, ["bang"]),
    "hi": (1, ["", ""]),
    "print": (1, []),
    "slider": (1, [""]),
    "multislider": (1, ["", ""]),
    "pictslider": (2, ["int", "int"]),
    "toggle": (1, ["int"]),
    "button": (1, ["bang"]),
    "flonum": (1, ["", "bang"]),
    "number": (1, ["", "bang"]),
    "textedit": (1, ["", "int", "", ""]),
    "umenu": (1, ["int", "", ""]),
    "message": (2, [""]),
    "comment": (1, []),
}


class MaxPatcher:
    """A Max patcher being built: boxes with ids ``obj-1``, ``obj-2``, ... and patchlines."""

    def __init__(self, rect: tuple[float, float, float, float]) -> None:
        self.rect = rect
        self.boxes: list[dict[str, Any]] = []
        self.lines: list[tuple[str, int, str, int]] = []

    def _add(self, box: dict[str, Any]) -> str:
        box_id = f"obj-{len(self.boxes) + 1}"
        box["id"] = box_id
        self.boxes.append(box)
        return box_id

    def obj(self, text: str, x: float, y: float, width: float | None = None) -> str:
        """An object box (``newobj``); inlets and outlets from :data:`_MAX_IO`."""
        words = text.split()
        name = words[0]
        if name in ("route", "t", "trigger", "unpack"):
            n_out = len(words) - 1 + (1 if name == "route" else 0)
            kinds = {"b": "bang", "f": "float", "i": "int", "l": "", "s": ""}
            outlettype = [""] * n_out if name == "route" else [kinds.get(w, "") for w in words[1:]]
            numinlets = 2 if name == "route" else 1
        else:
            numinlets, outlettype = _MAX_IO[name]
        width = width or max(40.0, 7.0 * len(text) + 14.0)
        box: dict[str, Any] = {
            "maxclass": "newobj",
            "text": text,
            "numinlets": numinlets,
            "numoutlets": len(outlettype),
            "outlettype": list(outlettype),
            "patching_rect": [x, y, width, 22.0],
        }
        # A long box (the state [route]) wraps in Max; give it the height of its lines.
        linecount = -(-int(6.0 * len(text) + 8.0) // int(width))
        if linecount > 1:
            box["linecount"] = linecount
            box["patching_rect"][3] = 8.0 + 14.0 * linecount
        return self._add(box)

    def ui(self, maxclass: str, x: float, y: float, w: float, h: float, **attrs: Any) -> str:
        """A user-interface box (slider, toggle, ...); ``attrs`` are its saved attributes."""
        numinlets, outlettype = _MAX_IO[maxclass]
        box = {
            "maxclass": maxclass,
            "numinlets": numinlets,
            "numoutlets": len(outlettype),
            "outlettype": list(outlettype),
            "parameter_enable": 0,
            "patching_rect": [x, y, w, h],
        }
        box.update(attrs)
        return self._add(box)

    def message(self, text: str, x: float, y: float) -> str:
        return self._add(
            {
                "maxclass": "message",
                "text": text,
                "numinlets": 2,
                "numoutlets": 1,
                "outlettype": [""],
                "patching_rect": [x, y, max(30.0, 7.0 * len(text) + 12.0), 22.0],
            }
        )

    def comment(self, text: str, x: float, y: float, width: float = 200.0) -> str:
        # Max wraps comments to their box; size the box so every line shows.
        chars_per_line = max(1, int(width / 6.5))
        linecount = sum(max(1, -(-len(part) // chars_per_line)) for part in text.split("\n"))
        box: dict[str, Any] = {
            "maxclass": "comment",
            "text": text,
            "numinlets": 1,
            "numoutlets": 0,
            "patching_rect": [x, y, width, 6.0 + 14.0 * linecount],
        }
        if linecount > 1:
            box["linecount"] = linecount
        return self._add(box)

    def connect(self, src: str, outlet: int, dst: str, inlet: int = 0) -> None:
        self.lines.append((src, outlet, dst, inlet))

    def to_json(self) -> str:
        patcher = {
            "patcher": {
                "fileversion": 1,
                "appversion": dict(_APPVERSION),
                "classnamespace": "box",
                "rect": list(self.rect),
                "bglocked": 0,
                "openinpresentation": 0,
                "default_fontsize": 12.0,
                "default_fontface": 0,
                "default_fontname": "Arial",
                "gridonopen": 1,
                "gridsize": [15.0, 15.0],
                "gridsnaponopen": 1,
                "objectsnaponopen": 1,
                "statusbarvisible": 2,
                "toolbarvisible": 1,
                "boxanimatetime": 200,
                "description": "",
                "digest": "",
                "tags": "",
                "style": "",
                "subpatcher_template": "",
                "boxes": [{"box": b} for b in self.boxes],
                "lines": [
                    {"patchline": {"source": [s, o], "destination": [d, i]}}
                    for s, o, d, i in self.lines
                ],
            }
        }
        return json.dumps(patcher, indent=2, ensure_ascii=False) + "\n"


@dataclass
class _Column:
    """Vertical layout cursor for one column of a patcher."""

    x: float
    y: float = 20.0
    width: float = 300.0

    def take(self, height: float) -> float:
        y = self.y
        self.y += height
        return y


def _max_input_block(
    p: MaxPatcher,
    col: _Column,
    a: Address,
    prefix_sink: str,
    loadbang: str,
    latent_count: int,
) -> None:
    """Widgets for one input address, each ending in ``[prepend <address>]`` → ``prefix_sink``."""
    x = col.x
    rng = a.range
    p.comment(f"{a.path} {a.types}".rstrip() + f": {_first_sentence(a.doc)}", x, col.y,
              col.width - 10)  # fmt: skip
    col.take(p.boxes[-1]["patching_rect"][3] + 4)

    def prepend(path: str, px: float, py: float) -> str:
        box = p.obj(f"prepend {path}", px, py)
        p.connect(box, 0, prefix_sink)
        return box

    def set_default(target: str, value: Any, sx: float, sy: float) -> str:
        # Plumbing, hidden when locked: shows the default without sending it.
        msg = p.message(f"set {_fmt(value)}", sx, sy)
        p.boxes[-1]["hidden"] = 1
        p.connect(loadbang, 0, msg)
        p.connect(msg, 0, target)
        return msg

    if _is_indexed(a) and a.types == "f":
        lo, hi = rng if rng is not None else (-8.0, 8.0)
        rows = -(-latent_count // 2)
        y = col.take(125 + 24 * rows)
        step = min(34.0, (col.width - 10) / max(1, latent_count))
        shared_set = None
        stem = _base(a).removeprefix("/sillage/").replace("/", "_")  # latent0, listen_mix0, ...
        for i in range(latent_count):
            sx = x + i * step
            s = p.ui(
                "slider", sx, y, 20.0, 110.0,
                floatoutput=1, min=lo, size=hi - lo, varname=f"{stem}{i}",
            )  # fmt: skip
            if a.default is not None:
                if shared_set is None:
                    shared_set = set_default(s, a.default, x + step * latent_count + 5, y)
                else:
                    p.connect(shared_set, 0, s)
            # Two columns of [prepend]s under the sliders: each box wide enough to read.
            px, py = x + 165 * (i // rows), y + 118 + 24 * (i % rows)
            pre = p.obj(f"prepend {_base(a)}/{i}", px, py, 160.0)
            p.connect(s, 0, pre)
            p.connect(pre, 0, prefix_sink)
        return

    if a.types == "f*":
        lo, hi = rng if rng is not None else (-8.0, 8.0)
        y = col.take(120)
        ms = p.ui(
            "multislider",
            x,
            y,
            min(col.width - 20, 24.0 * latent_count),
            80.0,
            setminmax=[lo, hi],
            size=latent_count,
            contdata=1,
            setstyle=0,
        )
        prepend(a.path, x, y + 88)
        p.connect(ms, 0, p.boxes[-1]["id"])
        return

    if a.types == "ff" and a.names == ("x", "y") and rng is not None:
        y = col.take(230)
        pad = p.ui(
            "pictslider",
            x,
            y,
            160.0,
            160.0,
            leftvalue=0,
            rightvalue=1000,
            bottomvalue=0,
            topvalue=1000,
        )
        dx = p.obj("/ 1000.", x, y + 168)
        dy = p.obj("/ 1000.", x + 60, y + 168)
        pk = p.obj("pak f f", x, y + 196)
        p.connect(pad, 0, dx)
        p.connect(pad, 1, dy)
        p.connect(dx, 0, pk, 0)
        p.connect(dy, 0, pk, 1)
        pre = prepend(a.path, x + 70, y + 196)
        p.connect(pk, 0, pre)
        p.comment(
            f"0..1000 on the pad = {_fmt(rng[0])}..{_fmt(rng[1])} on the map", x + 170, y + 60, 120
        )
        return

    if _numeric(a.types) and len(a.types) > 1:
        y = col.take(60 + 0)
        pk = p.obj("pak " + " ".join("f" if t == "f" else "i" for t in a.types), x, y + 26)
        for k, t in enumerate(a.types):
            nb = p.ui("flonum" if t == "f" else "number", x + 60 * k, y, 50.0, 22.0)
            p.connect(nb, 0, pk, k)
        pre = prepend(a.path, x + 90, y + 26)
        p.connect(pk, 0, pre)
        col.take(10)
        return

    if a.types == "":
        y = col.take(40)
        b = p.ui("button", x, y, 30.0, 30.0)
        m = p.message(a.path, x + 40, y + 4)
        p.connect(b, 0, m)
        p.connect(m, 0, prefix_sink)
        return

    if a.types == "i" and rng is not None and (rng[0], rng[1]) == (0, 1):
        y = col.take(40)
        t = p.ui("toggle", x, y, 24.0, 24.0)
        prepend(a.path, x + 40, y)
        p.connect(t, 0, p.boxes[-1]["id"])
        return

    if a.types in ("f", "i") and rng is not None:
        y = col.take(60)
        lo, hi = rng
        if a.types == "f":
            s = p.ui(
                "slider", x, y, 160.0, 20.0, floatoutput=1, min=lo, size=hi - lo, orientation=1
            )
            nb = p.ui("flonum", x + 170, y, 60.0, 22.0, minimum=lo, maximum=hi)
            p.connect(s, 0, nb)
            if a.default is not None:
                msg = set_default(s, a.default, x + 240, y)
                p.connect(msg, 0, nb)
        else:
            nb = p.ui("number", x + 170, y, 60.0, 22.0, minimum=lo, maximum=hi)
            if a.default is not None:
                dm = p.message(_fmt(a.default), x, y)
                p.connect(dm, 0, nb)
        pre = prepend(a.path, x + 90, y + 30)
        p.connect(nb, 0, pre)
        return

    if a.types == "s":
        words = _quoted_words(a.doc)
        y = col.take(60 + (30 if words else 0))
        te = p.ui("textedit", x, y, 200.0, 22.0, keymode=1, lines=1, text="")
        rt = p.obj("route text", x, y + 28)
        ts = p.obj("tosymbol", x + 80, y + 28)
        pre = prepend(a.path, x + 150, y + 28)
        p.connect(te, 0, rt)
        p.connect(rt, 0, ts)
        p.connect(ts, 0, pre)
        wx, wy = x, y + 56
        for w in words:
            width = 7.0 * len(w) + 12.0
            if wx > x and wx + width > x + col.width - 10:
                wx, wy = x, wy + 26
                col.take(26)
            m = p.message(w, wx, wy)
            p.connect(m, 0, pre)
            wx += width + 8.0
        if not words:
            p.comment("type, then Enter", x + 205, y, 90)
        return

    # Anything else (a label "sff", a future address): a clickable example to edit.
    y = col.take(40)
    m = p.message(_example_args(a) or "bang", x, y)
    pre = prepend(a.path, x + 160, y)
    p.connect(m, 0, pre)


def _max_state_block(
    p: MaxPatcher,
    col: _Column,
    a: Address,
    router: str,
    outlet: int,
    addresses: Sequence[Address],
    latent_count: int,
) -> None:
    """Displays for one state address, fed by outlet ``outlet`` of the ``[route]``."""
    x = col.x
    p.comment(f"{_tail(a.path)} {a.types}: {_first_sentence(a.doc)}", x, col.y, col.width - 10)
    col.take(p.boxes[-1]["patching_rect"][3] + 4)
    if a.types == "f*":
        lo, hi = _state_range(a, addresses) or (-8.0, 8.0)
        y = col.take(100)
        ms = p.ui(
            "multislider",
            x,
            y,
            min(col.width - 20, 24.0 * latent_count),
            80.0,
            setminmax=[lo, hi],
            size=latent_count,
            contdata=1,
            setstyle=1,
            ignoreclick=1,
        )
        p.connect(router, outlet, ms)
        return
    if _numeric(a.types):
        y = col.take(36)
        if len(a.types) == 1:
            nb = p.ui("flonum" if a.types == "f" else "number", x, y, 60.0, 22.0, ignoreclick=1)
            p.connect(router, outlet, nb)
            return
        up = p.obj("unpack " + " ".join(a.types), x, y)
        y2 = col.take(30)
        for k, t in enumerate(a.types):
            nb = p.ui("flonum" if t == "f" else "number", x + 52 * k, y2, 48.0, 22.0, ignoreclick=1)
            p.connect(up, k, nb)
        p.connect(router, outlet, up)
        if a.path.endswith("/level"):
            # RMS and peak side by side on a dB scale: the meter a performer glances at.
            ym = col.take(80)
            meter = p.ui(
                "multislider",
                x,
                ym,
                40.0,
                70.0,
                setminmax=[-60.0, 0.0],
                size=2,
                setstyle=1,
                ignoreclick=1,
            )
            p.connect(router, outlet, meter)
            p.comment("RMS | peak, -60..0 dBFS", x + 50, ym + 20, 150)
        return
    y = col.take(36)
    ps = p.obj("prepend set", x, y)
    y2 = col.take(30)
    m = p.message("", x, y2)
    p.boxes[-1]["patching_rect"][2] = col.width - 20
    p.connect(router, outlet, ps)
    p.connect(ps, 0, m)


def render_max_control(
    addresses: Sequence[Address] = ADDRESSES,
    *,
    latent_count: int = DEFAULT_LATENT_COUNT,
    osc_port: int = DEFAULT_OSC_PORT,
    state_port: int = DEFAULT_STATE_PORT,
    host: str = HOST,
) -> str:
    """``sillage-control.maxpat``: every input as a widget, every state output displayed."""
    inputs = [a for a in addresses if a.direction == "in"]
    outputs = [a for a in addresses if a.direction != "in"]
    p = MaxPatcher((40.0, 80.0, 1500.0, 900.0))
    p.comment(
        f"Sillage control. Start Sillage first (python run_instrument.py); it listens on UDP "
        f"{osc_port}. Every control below ends in [prepend <address>] -> [udpsend {host} "
        f"{osc_port}]. State comes back on {state_port}: on load this patch sends "
        f"{PREFIX}/subscribe {state_port} (click it again after restarting Sillage). "
        f"Addresses and ranges: docs/osc.md. {_GENERATED}.",
        20,
        10,
        1100,
    )
    send = p.obj(f"udpsend {host} {osc_port}", 20, 60)
    p.comment("everything goes out here", 200, 60, 200)
    loadbang = p.obj("loadbang", 420, 60)
    p.comment("on load: sliders to their defaults, subscribe to state", 490, 60, 340)

    columns: list[_Column] = []
    col = _Column(x=20, y=110, width=330)
    columns.append(col)
    max_height = 820.0
    for group, members in _groups(inputs):
        for a in members:
            if col.y > max_height:
                col = _Column(x=col.x + 345, y=110, width=330)
                columns.append(col)
            if a is members[0]:
                p.comment(GROUP_TITLES.get(group, group).upper(), col.x, col.y, 300)
                col.take(p.boxes[-1]["patching_rect"][3] + 6)
                p.boxes[-1]["fontface"] = 1
            _max_input_block(p, col, a, send, loadbang, latent_count)
            col.take(10)

    subscribe = _find(addresses, f"{PREFIX}/subscribe")
    if subscribe is not None:
        # The port to subscribe is this patch's [udpreceive] port, sent again on load.
        msg = p.message(str(state_port), 840, 60)
        pre = p.obj(f"prepend {subscribe.path}", 900, 60)
        p.connect(loadbang, 0, msg)
        p.connect(msg, 0, pre)
        p.connect(pre, 0, send)

    sx = columns[-1].x + 360
    scol = _Column(x=sx, y=110, width=330)
    p.comment("STATE", sx, scol.take(26), 300)
    p.boxes[-1]["fontface"] = 1
    recv = p.obj(f"udpreceive {state_port}", sx, scol.take(30))
    route_text = "route " + " ".join(a.path for a in outputs)
    router = p.obj(route_text, sx, scol.y, 320)
    scol.take(p.boxes[-1]["patching_rect"][3] + 8)
    p.connect(recv, 0, router)
    p.comment(
        "one outlet per state address, in table order; the last: anything else",
        sx,
        scol.take(34),
        320,
    )
    for k, a in enumerate(outputs):
        _max_state_block(p, scol, a, router, k, addresses, latent_count)
        scol.take(8)
    unknown = p.obj("print sillage-unrouted", sx, scol.take(30))
    p.connect(router, len(outputs), unknown)
    return p.to_json()


def render_max_sensors(
    addresses: Sequence[Address] = ADDRESSES,
    *,
    latent_count: int = DEFAULT_LATENT_COUNT,
    osc_port: int = DEFAULT_OSC_PORT,
    host: str = HOST,
    riot_port: int = RIOT_PORT,
) -> str:
    """``sillage-sensors.maxpat``: an R-IoT stream or a ``[hi]`` device forwarded to Sillage.

    Two ways for each source: forward the raw stream unchanged (a Sillage patch such as
    ``dancer-riot`` filters it and maps features), or map a few values straight to latent
    dimensions and the XY pad here, in Max.
    """
    latent = next((a for a in addresses if _is_indexed(a) and a.direction == "in"), None)
    xy = _find(addresses, f"{PREFIX}/xy")
    p = MaxPatcher((60.0, 100.0, 1100.0, 760.0))
    p.comment(
        f"Sillage sensors: forwards a sensor stream to Sillage (UDP {osc_port}). Turn on ONE "
        "gate per source: 'raw' passes the stream unchanged to Sillage's main port, where a "
        "Sillage patch that knows the format maps it (e.g. --patch dancer-riot: it filters, "
        "computes intensity, tilt, kicks); 'direct' maps a few values to the latent here. "
        "Only one program can listen on a port: with 'raw', change the port in the Sillage "
        f"patch's [[input]] (e.g. to {riot_port + 1}) so this patch keeps {riot_port}. "
        f"{_GENERATED}.",
        20,
        10,
        1000,
    )
    send = p.obj(f"udpsend {host} {osc_port}", 20, 70)
    # --- R-IoT ---------------------------------------------------------------------------
    p.comment("R-IoT (IRCAM)", 20, 110, 300)
    p.boxes[-1]["fontface"] = 1
    p.comment(
        f"The module sends OSC to this computer on UDP {riot_port} (set in its web page). "
        "R-IoT v2 firmware streams /<id>/raw: 22 numbers, accelerometer x y z (g) first, "
        "then gyroscope, magnetometer, ... Change /0/raw below to your module's id.",
        20,
        134,
        480,
    )
    recv = p.obj(f"udpreceive {riot_port}", 20, 200)
    t_raw = p.ui("toggle", 20, 236, 20.0, 20.0)
    p.comment("raw", 44, 236, 40)
    g_raw = p.obj("gate 1", 20, 266)
    p.connect(t_raw, 0, g_raw, 0)
    p.connect(recv, 0, g_raw, 1)
    p.connect(g_raw, 0, send)
    t_dir = p.ui("toggle", 180, 236, 20.0, 20.0)
    p.comment("direct", 204, 236, 60)
    g_dir = p.obj("gate 1", 180, 266)
    p.connect(t_dir, 0, g_dir, 0)
    p.connect(recv, 0, g_dir, 1)
    route = p.obj("route /0/raw", 180, 296)
    p.connect(g_dir, 0, route)
    unpack = p.obj("unpack f f f f f f", 180, 326)
    p.connect(route, 0, unpack)
    if latent is not None:
        lo, hi = latent.range if latent.range is not None else (-8.0, 8.0)
        reach = min(3.0, hi, -lo)
        p.comment(
            f"accelerometer x y z (about -2..2 g) -> latent 0, 1, 2 (-{_fmt(reach)}.."
            f"{_fmt(reach)}); gyroscope is left for you to map",
            180,
            356,
            460,
        )
        for k in range(min(3, latent_count)):
            sc = p.obj(f"scale -2. 2. -{_fmt(reach)}. {_fmt(reach)}.", 180 + 150 * k, 390)
            pre = p.obj(f"prepend {_base(latent)}/{k}", 180 + 150 * k, 420)
            p.connect(unpack, k, sc)
            p.connect(sc, 0, pre)
            p.connect(pre, 0, send)
    # --- [hi] ----------------------------------------------------------------------------
    y0 = 480.0
    p.comment("HID device ([hi]: gamepad, joystick)", 20, y0, 400)
    p.boxes[-1]["fontface"] = 1
    p.comment(
        "Click 'menu' and pick your device in the menu; turn on 'poll'; click 'info': the "
        "device's elements print in the Max console. Element numbers and value ranges vary "
        "by device and OS: move a stick, then edit [route 48 49] to its x and y elements "
        "and [scale 0 255 ...] to the range it reports.",
        20,
        y0 + 24,
        520,
    )
    toggle = p.ui("toggle", 20, y0 + 90, 20.0, 20.0)
    metro = p.obj("metro 10", 20, y0 + 120)
    p.connect(toggle, 0, metro)
    menu = p.message("menu", 100, y0 + 90)
    info = p.message("info", 150, y0 + 90)
    hi_box = p.obj("hi", 20, y0 + 150)
    devices = p.ui("umenu", 200, y0 + 120, 200.0, 22.0)
    p.connect(metro, 0, hi_box)
    p.connect(menu, 0, hi_box)
    p.connect(info, 0, hi_box)
    # [hi] lists devices on its right outlet; the umenu's index picks one.
    p.connect(hi_box, 1, devices)
    p.connect(devices, 0, hi_box)
    hroute = p.obj("route 48 49", 20, y0 + 180)
    p.connect(hi_box, 0, hroute)
    p.comment("poll", 44, y0 + 90, 40)
    if xy is not None:
        lo, hi = xy.range if xy.range is not None else (0.0, 1.0)
        sx = p.obj(f"scale 0 255 {_fmt(lo)}. {_fmt(hi)}.", 20, y0 + 210)
        sy = p.obj(f"scale 0 255 {_fmt(hi)}. {_fmt(lo)}.", 180, y0 + 210)
        pk = p.obj("pak f f", 20, y0 + 240)
        pre = p.obj(f"prepend {xy.path}", 20, y0 + 270)
        p.connect(hroute, 0, sx)
        p.connect(hroute, 1, sy)
        p.connect(sx, 0, pk, 0)
        p.connect(sy, 0, pk, 1)
        p.connect(pk, 0, pre)
        p.connect(pre, 0, send)
        p.comment("stick 0..255 -> map x, y (y flipped: up is up)", 340, y0 + 210, 300)
    return p.to_json()

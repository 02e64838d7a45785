"""The Pure Data patch (.pd text)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from instrument.companion.table import (
    _GENERATED,
    DEFAULT_LATENT_COUNT,
    GROUP_TITLES,
    HOST,
    _base,
    _example_args,
    _find,
    _first_sentence,
    _groups,
    _is_indexed,
    _numeric,
    _quoted_words,
    _tail,
    pd_name,
)
from instrument.protocol import (
    ADDRESSES,
    DEFAULT_OSC_PORT,
    DEFAULT_STATE_PORT,
    PREFIX,
    Address,
)

# --------------------------------------------------------------------------------------
# Pure Data
# --------------------------------------------------------------------------------------


def _pd_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("$", "\\$").replace(";", " \\;").replace(",", " \\,")


class PdPatch:
    """A vanilla Pd patch being built; objects are numbered in creation order."""

    def __init__(self, width: int = 2000, height: int = 1100) -> None:
        self.lines = [f"#N canvas 0 50 {width} {height} 12;"]
        self.count = 0
        self.connections: list[tuple[int, int, int, int]] = []

    def _add(self, line: str) -> int:
        self.lines.append(line)
        self.count += 1
        return self.count - 1

    def obj(self, x: float, y: float, text: str) -> int:
        return self._add(f"#X obj {x:g} {y:g} {text};")

    def msg(self, x: float, y: float, text: str) -> int:
        return self._add(f"#X msg {x:g} {y:g} {text};")

    def text(self, x: float, y: float, text: str, width: int = 0) -> int:
        # Pd comments are atoms: escape commas/semicolons, keep them readable.
        suffix = f" \\, f {width}" if width else ""
        return self._add(f"#X text {x:g} {y:g} {_pd_escape(text)}{suffix};")

    def floatatom(self, x: float, y: float, width: int = 6, receive: str = "-") -> int:
        return self._add(f"#X floatatom {x:g} {y:g} {width} 0 0 0 - {receive} - 0;")

    def symbolatom(self, x: float, y: float, width: int = 18) -> int:
        return self._add(f"#X symbolatom {x:g} {y:g} {width} 0 0 0 - - - 0;")

    def listbox(self, x: float, y: float, width: int = 24) -> int:
        return self._add(f"#X listbox {x:g} {y:g} {width} 0 0 0 - - - 0;")

    def hsl(
        self, x: float, y: float, lo: float, hi: float, label: str = "empty", width: int = 128
    ) -> int:
        return self.obj(
            x,
            y,
            f"hsl {width} 15 {lo:g} {hi:g} 0 0 empty empty {label} -2 -8 0 10 "
            "#fcfcfc #000000 #000000 0 1",
        )

    def vsl(
        self, x: float, y: float, lo: float, hi: float, label: str = "empty", height: int = 100
    ) -> int:
        return self.obj(
            x,
            y,
            f"vsl 15 {height} {lo:g} {hi:g} 0 0 empty empty {label} 0 -9 0 10 "
            "#fcfcfc #000000 #000000 0 1",
        )

    def tgl(self, x: float, y: float) -> int:
        return self.obj(x, y, "tgl 15 0 empty empty empty 17 7 0 10 #fcfcfc #000000 #000000 0 1")

    def bng(self, x: float, y: float) -> int:
        return self.obj(x, y, "bng 25 250 50 0 empty empty empty 17 7 0 10 #fcfcfc #000000 #000000")

    def connect(self, src: int, outlet: int, dst: int, inlet: int = 0) -> None:
        self.connections.append((src, outlet, dst, inlet))

    def render(self) -> str:
        out = list(self.lines)
        out += [f"#X connect {s} {o} {d} {i};" for s, o, d, i in self.connections]
        return "\n".join(out) + "\n"


def _pd_state_tree(outputs: Sequence[Address]) -> dict[str, Any]:
    """Trie of address parts, as [oscparse] splits them: ``{"sillage": {"state": {...}}}``."""
    tree: dict[Any, Any] = {}
    for a in outputs:
        node = tree
        for part in a.path.strip("/").split("/"):
            node = node.setdefault(part, {})
        node[None] = a
    return tree


def render_pd_control(
    addresses: Sequence[Address] = ADDRESSES,
    *,
    latent_count: int = DEFAULT_LATENT_COUNT,
    osc_port: int = DEFAULT_OSC_PORT,
    state_port: int = DEFAULT_STATE_PORT,
    host: str = HOST,
) -> str:
    """``sillage-control.pd``: vanilla Pd controls and state displays.

    Every input address has a receive name (:func:`pd_name`, e.g. ``sillage-latent-0``):
    ``[s sillage-gain_db]`` from any patch plays it. Every state address is sent on as
    ``sillage-state-...``. Opened as an abstraction, ``[sillage-control ENGINE_PORT
    STATE_PORT]`` overrides the two ports (0 or missing: the defaults).
    """
    inputs = [a for a in addresses if a.direction == "in"]
    outputs = [a for a in addresses if a.direction != "in"]
    p = PdPatch()
    p.text(
        20,
        10,
        f"Sillage control (vanilla Pd). Start Sillage first: it listens on UDP "
        f"{osc_port}. State comes back on {state_port} after {PREFIX}/subscribe (sent on "
        f"load). Addresses: docs/osc.md. {_GENERATED}.",
        120,
    )
    p.text(
        20,
        60,
        "From your own patch: [s sillage-latent-0] etc. (names below); state: "
        "[r sillage-state-level] etc. As an abstraction: [sillage-control ENGINE_PORT "
        "STATE_PORT].",
        120,
    )

    # --- network out: one chain every control feeds ------------------------------------
    nx, ny = 20, 110
    lp = p.obj(nx, ny + 180, "list prepend send")
    lt = p.obj(nx, ny + 205, "list trim")
    ns = p.obj(nx, ny + 230, "netsend -u -b")
    p.connect(lp, 0, lt)
    p.connect(lt, 0, ns)
    p.text(nx + 140, ny + 230, "OSC out (UDP)")
    lb = p.obj(nx, ny, "loadbang")
    tr = p.obj(nx, ny + 25, "t b b")
    p.connect(lb, 0, tr)
    # Ports: $1/$2 as an abstraction, 0 at top level, where the defaults take over.
    f1 = p.obj(nx + 120, ny + 50, "f \\$1")
    s1 = p.obj(nx + 120, ny + 75, "sel 0")
    d1 = p.msg(nx + 120, ny + 100, str(osc_port))
    c1 = p.msg(nx + 120, ny + 130, f"connect {host} \\$1")
    p.connect(tr, 1, f1)
    p.connect(f1, 0, s1)
    p.connect(s1, 0, d1)
    p.connect(s1, 1, c1)
    p.connect(d1, 0, c1)
    p.connect(c1, 0, ns)
    rc = p.obj(nx + 330, ny + 130, "r sillage-connect")
    p.connect(rc, 0, ns)
    p.text(nx + 330, ny + 155, "e.g. [; sillage-connect connect HOST PORT(", 30)

    # --- network in ---------------------------------------------------------------------
    nr = p.obj(nx, ny + 300, "netreceive -u -b")
    f2 = p.obj(nx + 220, ny + 50, "f \\$2")
    s2 = p.obj(nx + 220, ny + 75, "sel 0")
    d2 = p.msg(nx + 220, ny + 100, str(state_port))
    # Listen before subscribing, so the first state message already finds the socket open.
    tf = p.obj(nx + 220, ny + 240, "t f f")
    ls = p.msg(nx + 220, ny + 270, "listen \\$1")
    p.connect(tr, 0, f2)
    p.connect(f2, 0, s2)
    p.connect(s2, 0, d2)
    p.connect(s2, 1, tf)
    p.connect(d2, 0, tf)
    p.connect(tf, 1, ls)
    p.connect(ls, 0, nr)
    again = p.bng(nx + 330, ny + 40)
    p.connect(again, 0, f2)
    p.text(nx + 365, ny + 40, "subscribe again (after restarting Sillage)", 22)

    subscribe = _find(addresses, f"{PREFIX}/subscribe")
    if subscribe is not None:
        sub = p.obj(nx + 300, ny + 270, "list")
        p.connect(tf, 0, sub)
        fmt = p.obj(
            nx + 300, ny + 295, "oscformat " + " ".join(subscribe.path.strip("/").split("/"))
        )
        p.connect(sub, 0, fmt)
        p.connect(fmt, 0, lp)
        p.text(nx + 300, ny + 320, "subscribe to state on load", 30)

    # --- state in -----------------------------------------------------------------------
    sx, sy = 20, ny + 360
    op = p.obj(sx, sy, "oscparse")
    lt2 = p.obj(sx, sy + 25, "list trim")
    p.connect(nr, 0, op)
    p.connect(op, 0, lt2)
    p.text(sx + 90, sy, "OSC in: state", 20)
    y_cursor = [sy + 60]

    def _display(a: Address, src: int, outlet: int, x: float) -> None:
        y = y_cursor[0]
        lst = p.obj(x + 330, y, "list")
        p.connect(src, outlet, lst)
        snd = p.obj(x + 370, y, f"s {pd_name(a.path)}")
        p.connect(lst, 0, snd)
        if _numeric(a.types) and len(a.types) == 1:
            box = p.floatatom(640, y)
        else:
            box = p.listbox(640, y, 30)
        p.connect(lst, 0, box)
        p.text(880, y, f"{_tail(a.path)} {a.types}", 0)
        y_cursor[0] += 28
        if a.path.endswith("/level"):
            up = p.obj(x + 380, y + 28, "unpack f f")
            p.connect(lst, 0, up)
            m1 = p.vsl(640, y + 30, -60, 0, "rms", 60)
            m2 = p.vsl(690, y + 30, -60, 0, "peak", 60)
            p.connect(up, 0, m1)
            p.connect(up, 1, m2)
            y_cursor[0] += 100

    def build(node: dict[Any, Any], src: int, src_outlet: int, x: float) -> None:
        keys = [k for k in node if k is not None]
        if not keys:
            _display(node[None], src, src_outlet, x)
            return
        r = p.obj(x, y_cursor[0], "route " + " ".join(keys))
        p.connect(src, src_outlet, r)
        y_cursor[0] += 28
        for k, key in enumerate(keys):
            build(node[key], r, k, x + 15)
        if None in node:
            # e.g. /sillage/state/label (its own data) beside /sillage/state/label/delete.
            _display(node[None], r, len(keys), x)

    tree = _pd_state_tree(outputs)
    build(tree, lt2, 0, sx)

    # --- controls -----------------------------------------------------------------------
    cx = 1060.0
    y = 110.0
    for group, members in _groups(inputs):
        for a in members:
            if y > 1000:
                cx, y = cx + 470, 110.0
            if a is members[0]:
                p.text(cx, y, GROUP_TITLES.get(group, group).upper())
                y += 25
            y = _pd_input_block(p, a, cx, y, lp, latent_count)
    return p.render()


def _pd_input_block(
    p: PdPatch, a: Address, x: float, y: float, sink: int, latent_count: int
) -> float:
    """Widgets and a receive for one input address; returns the next free y."""

    def chain(path: str, name: str, bx: float, by: float) -> int:
        """``[r name]`` → ``[list]`` → ``[oscformat ...]`` → sink; returns the [list]."""
        # [list] turns a bare selector ("keep", a bang) into a list oscformat accepts.
        r = p.obj(bx, by, f"r {name}")
        lst = p.obj(bx, by + 25, "list")
        fmt = p.obj(bx + 45, by + 25, "oscformat " + " ".join(path.strip("/").split("/")))
        p.connect(r, 0, lst)
        p.connect(lst, 0, fmt)
        p.connect(fmt, 0, sink)
        return lst

    doc = _first_sentence(a.doc)
    p.text(x, y, f"{a.path} {a.types}".rstrip() + f": {doc}", 60)
    y += 22 + 17 * ((len(doc) + len(a.path) + 5) // 60)
    rng = a.range
    if _is_indexed(a) and a.types == "f":
        lo, hi = rng if rng is not None else (-8.0, 8.0)
        for i in range(latent_count):
            path = f"{_base(a)}/{i}"
            s = p.hsl(x, y + 20, lo, hi, _tail(path))
            lst = chain(path, pd_name(path), x + 150, y)
            p.connect(s, 0, lst)
            y += 55
        return y
    lst = chain(a.path, pd_name(a.path), x + 150, y)
    if a.types == "":
        b = p.bng(x, y)
        p.connect(b, 0, lst)
    elif a.types == "i" and rng is not None and (rng[0], rng[1]) == (0, 1):
        t = p.tgl(x, y + 5)
        p.connect(t, 0, lst)
    elif a.types == "f" and rng is not None:
        s = p.hsl(x, y + 20, rng[0], rng[1], _tail(a.path))
        p.connect(s, 0, lst)
    elif a.types == "ff" and rng is not None:
        s0 = p.hsl(x, y + 20, rng[0], rng[1], a.names[0] if a.names else "x")
        s1 = p.hsl(x, y + 55, rng[0], rng[1], a.names[1] if len(a.names) > 1 else "y")
        pk = p.obj(x + 150, y + 55, "pack f f")
        tb = p.obj(x + 220, y + 55, "t b f")
        p.connect(s0, 0, pk, 0)
        p.connect(s1, 0, tb)
        p.connect(tb, 1, pk, 1)
        p.connect(tb, 0, pk, 0)
        p.connect(pk, 0, lst)
        y += 40
    else:
        if a.types == "s":
            # A symbol box to type into (a model path, a patch name), then Enter.
            sym = p.symbolatom(x, y, 18)
            p.connect(sym, 0, lst)
            y += 25
        words = _quoted_words(a.doc) if a.types == "s" else []
        choices = words or ([_example_args(a)] if _example_args(a) and a.types != "s" else [])
        mx = x
        for w in choices:
            if mx > x and mx + 8 * len(w) > x + 140:
                mx = x
                y += 25
            m = p.msg(mx, y, _pd_escape(w))
            p.connect(m, 0, lst)
            mx += 8 * len(w) + 22
        if choices:
            y += 25
    return y + 55

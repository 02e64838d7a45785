"""docs/osc.md and docs/max-pd.md."""

from __future__ import annotations

from collections.abc import Sequence

from instrument.companion.table import (
    _GENERATED,
    DEFAULT_LATENT_COUNT,
    GROUP_TITLES,
    RIOT_PORT,
    _base,
    _find,
    _fmt,
    _groups,
    _is_indexed,
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
# docs/osc.md
# --------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    # A bare <i> would be read as an HTML tag (italics) by Markdown renderers.
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _md_code(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_types(types: str) -> str:
    return f"`{types}`" if types else "none"


def render_osc_md(
    addresses: Sequence[Address] = ADDRESSES,
    *,
    osc_port: int = DEFAULT_OSC_PORT,
    state_port: int = DEFAULT_STATE_PORT,
) -> str:
    """The protocol reference, one table per group, inputs first then state outputs."""
    error = _find(addresses, f"{PREFIX}/state/error")
    lines = [
        "# Sillage OSC protocol",
        "",
        f"<!-- {_GENERATED}; edit the table, not this file. -->",
        "",
        f"Sillage listens for OSC over UDP on port **{osc_port}** (`--osc-port`). State goes "
        f"back to every host that sent `{PREFIX}/subscribe <port>` (conventionally "
        f"**{state_port}**), on the port it named: never to the sender's source port, which "
        "Max's `[udpsend]` picks at random.",
        "",
        "Types are OSC type tags: `f` a number (any numeric OSC type is accepted: int, float, "
        "double), `i` an integer (a float with an integral value is accepted, so Pd's floats "
        "work), `s` a string, `f*` one or more numbers, none: no argument. Ranges are "
        "inclusive. A value outside its range is rejected"
        + (f" (the engine reports it on `{error.path}`)" if error is not None else "")
        + " unless the entry says *clamped*. `<i>` is a 0-based index.",
        "",
        "Companion patches generated from the same table: "
        "`patches/max/sillage-control.maxpat`, `patches/max/sillage-sensors.maxpat`, "
        "`patches/pd/sillage-control.pd`; how to play them: [max-pd.md](max-pd.md).",
        "",
    ]
    inputs = [a for a in addresses if a.direction == "in"]
    outputs = [a for a in addresses if a.direction != "in"]
    lines += ["## Inputs (to the engine)", ""]
    for group, members in _groups(inputs):
        lines += [f"### {GROUP_TITLES.get(group, group.capitalize())}", ""]
        lines += [
            "| Address | Types | Range | Default | What it does | Example |",
            "|---|---|---|---|---|---|",
        ]
        for a in members:
            rng = "" if a.range is None else f"{_fmt(a.range[0])} .. {_fmt(a.range[1])}"
            if a.range is not None and a.clamp:
                rng += " (clamped)"
            default = "" if a.default is None else _fmt(a.default)
            names = f" Arguments: {', '.join(a.names)}." if a.names else ""
            lines.append(
                f"| `{a.path}` | {_md_types(a.types)} | {rng} | {default} | "
                f"{_md_cell(a.doc)}{_md_cell(names)} | `{_md_code(a.example)}` |"
            )
        lines.append("")
    lines += ["## State (from the engine)", ""]
    for group, members in _groups(outputs):
        if group != "state":
            lines += [f"### {GROUP_TITLES.get(group, group.capitalize())}", ""]
        lines += ["| Address | Types | What it carries |", "|---|---|---|"]
        for a in members:
            lines.append(f"| `{a.path}` | {_md_types(a.types)} | {_md_cell(a.doc)} |")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# docs/max-pd.md
# --------------------------------------------------------------------------------------


def render_max_pd_md(
    addresses: Sequence[Address] = ADDRESSES,
    *,
    latent_count: int = DEFAULT_LATENT_COUNT,
    osc_port: int = DEFAULT_OSC_PORT,
    state_port: int = DEFAULT_STATE_PORT,
) -> str:
    """The README section "Play from Max / Pure Data"."""
    inputs = [a for a in addresses if a.direction == "in"]
    outputs = [a for a in addresses if a.direction != "in"]
    latent = next((a for a in inputs if _is_indexed(a)), None)
    rows = []
    for a in inputs:
        if _is_indexed(a):
            name = pd_name(_base(a)) + "-0 … -" + str(latent_count - 1)
        else:
            name = pd_name(a.path)
        rows.append(f"| `{name}` | `{a.path}` | {_md_types(a.types)} |")
    state_rows = [f"| `{pd_name(a.path)}` | `{a.path}` | {_md_types(a.types)} |" for a in outputs]
    latent_line = (
        f"one slider per latent dimension (`{_base(latent)}/0` … `/{latent_count - 1}`), "
        if latent is not None
        else ""
    )
    text = f"""## Play from Max / Pure Data

<!-- {_GENERATED}; edit the generator, not this file. -->

Sillage speaks OSC over UDP: it listens on port **{osc_port}** and sends its state (latent,
level, underruns, latency, …) to any port you subscribe with `{PREFIX}/subscribe <port>`.
The companion patches in `patches/` are generated from the same address table as the server
and [docs/osc.md](osc.md), so they always match what the engine accepts.

### 1. Start Sillage

```sh
make run                     # or: python run_instrument.py  (default model and patch)
```

Wait for the line starting with `Sillage ready`: OSC is up on UDP {osc_port}. Another port:
`--osc-port PORT` (then change `{osc_port}` in the patch, see below). Another computer:
`--listen 0.0.0.0`, and the engine's IP address instead of `127.0.0.1` in the patch.

### 2a. Max/MSP (Max 8 or later)

1. Open `patches/max/sillage-control.maxpat`.
2. On load it sends `{PREFIX}/subscribe {state_port}`, so the state displays on the right
   (played latent, level meter, underruns, latency) start moving. If you started Sillage
   after the patch, click the `{state_port}` message box next to `loadbang` once.
3. Play: {latent_line}the XY pad
   (`{PREFIX}/xy`), gain, the panic button, scale and smoothing. Type a model path or a patch name into the text fields and press Enter to
   load it; click `keep`/`drop` to tag the moment; the toggle records the session.
4. To drive Sillage from your own patch, copy any `[prepend /sillage/…]` → `[udpsend
   127.0.0.1 {osc_port}]` pair, or just send `/sillage/latent/0 0.5`-style messages into a
   `[udpsend 127.0.0.1 {osc_port}]`. Any numeric type works: ints and floats are both
   accepted.
5. Sensors: `patches/max/sillage-sensors.maxpat` receives an R-IoT stream on UDP
   {RIOT_PORT} and either forwards it unchanged to Sillage's port {osc_port} ("raw": a
   Sillage patch that knows the format maps it, e.g. `--patch dancer-riot`) or maps the
   accelerometer to latent dimensions itself ("direct"); it also reads a gamepad or
   joystick with `[hi]` and moves the XY pad. Only one program can listen on a port: with
   "raw", change the `port` of the Sillage patch's `[[input]]` (say to {RIOT_PORT + 1})
   so Max keeps {RIOT_PORT}. If the sensor needs nothing from Max, skip Max: point the
   R-IoT at Sillage directly (`--patch dancer-riot` listens on {RIOT_PORT}).

Another engine port: edit the `[udpsend 127.0.0.1 {osc_port}]` box. Another state port:
edit `[udpreceive {state_port}]` and the `{state_port}` message box to the same number.

### 2b. Pure Data (vanilla, 0.52 or later; tested with 0.53)

1. Open `patches/pd/sillage-control.pd`. It uses only vanilla objects (`[oscformat]`,
   `[netsend -u -b]`, `[netreceive -u -b]`, `[oscparse]`): no externals to install.
2. On load it connects to `127.0.0.1:{osc_port}`, listens on UDP {state_port} and sends
   `{PREFIX}/subscribe {state_port}`; the state boxes on the left start moving.
3. Play with the sliders and buttons on the right.
4. From your own patch, put `[sillage-control]` in it as an abstraction (add
   `patches/pd` to Pd's search path, or copy the file next to your patch) and use
   `[s NAME]` / `[r NAME]` with the names below. `[sillage-control 9000 9001]` talks to an
   engine on port 9000 and takes state on 9001. Another host:
   `[; sillage-connect connect HOST PORT(`, then click the "subscribe again" button.

Headless (as the tests run it): `pd -nogui -nosound -path patches/pd yourpatch.pd`.

| Pd send name | OSC address | Types |
|---|---|---|
{chr(10).join(rows)}

| Pd receive name (state) | OSC address | Types |
|---|---|---|
{chr(10).join(state_rows)}

### Troubleshooting

- Nothing moves on the state side: send `{PREFIX}/subscribe <your port>` again after
  restarting Sillage (the engine forgets subscribers when it stops).
- A value is ignored: the engine rejects out-of-range or wrong-type values and says why on
  `{PREFIX}/state/error` (shown in both patches) and in its console; ranges are in
  [docs/osc.md](osc.md).
- Max `[udpsend]` sends from a random port, so Sillage never replies to the sender's port:
  only to the port named in `{PREFIX}/subscribe`.
"""
    return text

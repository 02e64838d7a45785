"""``python -m ui``: the latent-map window, a client of a running engine over OSC.

    python -m ui [--engine HOST:PORT] [--map MAP.npz] [--listen PORT] [--projection]
    python -m ui --screenshot OUT.png [--map MAP.npz] [--projection]

Without ``--map`` the map shipped with the default model is used; if a model has no map yet
(``--model``, or the default model), one is built in a separate process, cached under
``~/.cache/sillage/maps`` and shown when ready.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from instrument.protocol import DEFAULT_OSC_PORT, DEFAULT_STATE_PORT
from models import DEFAULT_MODEL_PATH

if TYPE_CHECKING:
    from mappings.latentmap import LatentMap

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / DEFAULT_MODEL_PATH
DEFAULT_MAP = DEFAULT_MODEL.with_suffix(".map.npz")
SCREENSHOT_SIZE = (1100, 720)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line of ``python -m ui``."""
    p = argparse.ArgumentParser(prog="python -m ui", description="Sillage's latent map view.")
    p.add_argument("--engine", default=f"127.0.0.1:{DEFAULT_OSC_PORT}", metavar="HOST:PORT",
                   help=f"engine OSC address (default 127.0.0.1:{DEFAULT_OSC_PORT})")  # fmt: skip
    p.add_argument("--map", metavar="MAP.npz", help="map file (default: the default model's)")
    p.add_argument("--model", metavar="MODEL.ts",
                   help="model whose map to use or build and cache on first run")  # fmt: skip
    p.add_argument("--corpus", metavar="AUDIO_DIR",
                   help="audio to encode when building a map on first run")  # fmt: skip
    p.add_argument("--listen", type=int, default=DEFAULT_STATE_PORT, metavar="PORT",
                   help=f"port for the engine's state (default {DEFAULT_STATE_PORT}; 0: any)")  # fmt: skip
    p.add_argument("--projection", action="store_true",
                   help="full screen, large high-contrast cursor, no chrome (for a projector)")  # fmt: skip
    p.add_argument("--colour", choices=("source", "loudness", "centroid"), default="source")
    p.add_argument("--send", choices=("auto", "xy", "latent"), default="auto",
                   help="send /sillage/xy (the engine's map) or /sillage/latent (ours); "
                   "auto: xy unless the engine shows it has no map")  # fmt: skip
    p.add_argument("--screenshot", metavar="OUT.png", help="render one frame offscreen and exit")
    return p.parse_args(argv)


def resolve_map(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    """``(map to load now, model whose map must be built first)``."""
    if args.map:
        return Path(args.map), None
    from mappings.latentmap import find_map

    model = Path(args.model) if args.model else (DEFAULT_MODEL if DEFAULT_MODEL.is_file() else None)
    if model is not None:
        found = find_map(model)
        return (found, None) if found is not None else (None, model)
    return (DEFAULT_MAP, None) if DEFAULT_MAP.is_file() else (None, None)


def stale_warning(latent_map: LatentMap, model: Path) -> str:
    """A warning when the map was built from another export of ``model`` (else "")."""
    from mappings.latentmap import model_digest

    built = latent_map.params.get("model", {})
    if built.get("name") == model.stem and built.get("sha1") not in (None, model_digest(model)):
        return (f"map built for an older {model.name}: rebuild it with "
                f"python -m ui.map build --model {model} AUDIO_DIR --out MAP.npz")  # fmt: skip
    return ""


def screenshot(out: str | os.PathLike[str], map_path: Path | None, *, projection: bool,
               colour: str = "source") -> None:  # fmt: skip
    """Render one frame (map, a cursor with its trail, labels) offscreen to ``out``."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import numpy as np
    from PySide6 import QtWidgets

    from mappings.latentmap import LatentMap
    from ui.demo import demo_map
    from ui.window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    latent_map = LatentMap.load(map_path) if map_path is not None else demo_map()
    window = MainWindow(latent_map, None, None, colour=colour)
    window.resize(*SCREENSHOT_SIZE)
    if projection:
        window.set_projection(True, fullscreen=False)
    window.show()
    # A trail as the engine would draw it: the played latent gliding between corpus points.
    rng = np.random.default_rng(1)
    anchors = latent_map.latents[rng.choice(latent_map.n_points, 4, replace=False)]
    for a, b in itertools.pairwise(anchors):
        for t in np.linspace(0.0, 1.0, 16, endpoint=False):
            window.view.set_cursor(*latent_map.to_xy((1 - t) * a + t * b))
    window.view.set_cursor(*latent_map.to_xy(anchors[-1]))
    app.processEvents()
    if not window.grab().save(str(out)):
        raise OSError(f"could not write screenshot {out}")
    window.close()


def run(args: argparse.Namespace) -> int:
    """Open the window, connect to the engine, run until closed."""
    from ui.qtplatform import problem

    if (why := problem()) is not None:
        # Qt would abort this process with a misleading message; the engine plays on regardless.
        print(why, file=sys.stderr, flush=True)
        return 3
    from PySide6 import QtCore, QtWidgets

    from mappings.latentmap import LatentMap
    from ui.link import EngineLink, parse_hostport
    from ui.map import start_cached_build
    from ui.window import MainWindow

    engine = parse_hostport(args.engine)
    map_path, to_build = resolve_map(args)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    try:
        link = EngineLink(engine, listen_port=args.listen)
    except OSError as exc:
        if args.listen != DEFAULT_STATE_PORT:
            raise OSError(f"cannot listen for state on port {args.listen} ({exc})") from None
        # Another window (or a Max patch) has the default port: any port works, since the
        # subscription tells the engine where to send.
        link = EngineLink(engine, listen_port=0)
    latent_map = LatentMap.load(map_path) if map_path is not None else None
    window = MainWindow(latent_map, map_path, link, send=args.send, colour=args.colour)
    window.resize(*SCREENSHOT_SIZE)
    window.connected.connect(
        lambda: print(f"Sillage UI: connected to engine {engine[0]}:{engine[1]}", flush=True)
    )
    model = Path(args.model) if args.model else DEFAULT_MODEL
    if latent_map is not None and model.is_file():
        window.stale_warning = stale_warning(latent_map, model)
        window.status.warning.setText(window.stale_warning)
    if to_build is not None:
        proc, out = start_cached_build(to_build, args.corpus)
        window.status.showMessage(f"building the map for {to_build.name} (about a minute)…")
        poll = QtCore.QTimer(window, interval=500)

        def check() -> None:
            if proc.poll() is None:
                return
            poll.stop()
            if proc.returncode == 0 and out.is_file():
                window.map_path = out
                window.set_map(LatentMap.load(out))
                window.status.showMessage(f"map built and cached: {out}", 8000)
                print(f"Sillage UI: map built and cached: {out}", flush=True)
            else:
                window.status.showMessage(f"map build failed (exit {proc.returncode})")

        poll.timeout.connect(check)
        poll.start()
    elif latent_map is None:
        window.status.showMessage("no map: pass --map MAP.npz or --model MODEL.ts")
    # Ctrl-C and SIGTERM close the window (saving pending labels); Python runs the handler at
    # the next timer tick, since Qt's event loop holds the main thread.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: window.close())
    link.start()
    print(
        f"Sillage UI: state on port {link.listen_port}, engine {engine[0]}:{engine[1]}", flush=True
    )
    if args.projection:
        window.set_projection(True)
    else:
        window.show()
    return app.exec()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m ui``."""
    args = parse_args(argv)
    try:
        if args.screenshot:
            map_path = Path(args.map) if args.map else resolve_map(args)[0]
            screenshot(args.screenshot, map_path, projection=args.projection, colour=args.colour)
            print(f"wrote {args.screenshot}")
            return
        sys.exit(run(args))
    except (OSError, ValueError) as e:
        sys.exit(f"{type(e).__name__}: {e}")

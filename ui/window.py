"""The main window: map view, toolbar, status bar; glue between the view, the map file and OSC."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from mappings.latentmap import LatentMap
from ui.link import EngineLink, Snapshot
from ui.status import StatusBar
from ui.view import COLOUR_MODES, MapView

SAVE_DELAY_MS = 500
HELP = "click/drag: play · double-click: label · right-click: region, delete · F11: projection"


class _Bridge(QtCore.QObject):
    """Carries the receiver thread's "new state" nudge to the GUI thread (queued signal)."""

    changed = QtCore.Signal()


class MainWindow(QtWidgets.QMainWindow):
    """The Sillage map window.

    Emits ``connected`` when state starts arriving (at first contact and after each outage).

    Parameters
    ----------
    latent_map : LatentMap or None
        The map to show (``None``: an empty view until one is loaded with :meth:`set_map`).
    map_path : path-like or None
        Where labels and regions are saved; ``None`` keeps them in memory only.
    link : EngineLink or None
        The engine connection; ``None`` for an offline view (screenshots).
    send : {"auto", "xy", "latent"}
        Send ``/sillage/xy`` (the engine interpolates with its map) or ``/sillage/latent``
        (interpolated here, for an engine that has no map). ``"auto"`` sends ``/sillage/xy``
        unless the engine's state shows it has no map (state arrives, never an xy).
    """

    connected = QtCore.Signal()

    def __init__(
        self,
        latent_map: LatentMap | None,
        map_path: str | os.PathLike[str] | None = None,
        link: EngineLink | None = None,
        *,
        send: str = "auto",
        colour: str = "source",
    ) -> None:
        super().__init__()
        if send not in ("auto", "xy", "latent"):
            raise ValueError(f"send must be 'auto', 'xy' or 'latent', got {send!r}")
        self.setWindowTitle("Sillage — latent map")
        self.link = link
        self.send = send
        self.map_path = Path(map_path) if map_path is not None else None
        self.view = MapView(self)
        self.setCentralWidget(self.view)
        self.status = StatusBar(self)
        self.setStatusBar(self.status)
        self._examples: dict[int, tuple[float, float]] = {}
        self.stale_warning = ""  # set by the app when the map is from an older model export
        # When state/latent and state/xy arrived last (the engine sends xy only with a map).
        self._latent_since: float | None = None
        self._latent_at: float | None = None
        self._xy_at: float | None = None
        self._build_toolbar(colour)
        self._wire()
        self.set_map(latent_map)

    # ------------------------------------------------------------------ setup
    def _build_toolbar(self, colour: str) -> None:
        bar = self.addToolBar("map")
        bar.setMovable(False)
        bar.addWidget(QtWidgets.QLabel(" colour by "))
        self.colour_box = QtWidgets.QComboBox()
        self.colour_box.addItems(COLOUR_MODES)
        self.colour_box.setCurrentText(colour)
        self.colour_box.currentTextChanged.connect(self.view.set_colour_mode)
        bar.addWidget(self.colour_box)
        self.view.set_colour_mode(colour)
        bar.addSeparator()
        projection = QtGui.QAction("Projection", self)
        projection.setShortcut(QtGui.QKeySequence("F11"))
        projection.triggered.connect(self.toggle_projection)
        bar.addAction(projection)
        self.addAction(projection)  # shortcut still works when the toolbar is hidden
        leave = QtGui.QAction("Leave projection", self)
        leave.setShortcut(QtGui.QKeySequence("Esc"))
        leave.triggered.connect(lambda: self.set_projection(False))
        self.addAction(leave)
        save = QtGui.QAction("Save labels", self)
        save.setShortcut(QtGui.QKeySequence.StandardKey.Save)
        save.triggered.connect(self.save_map)
        self.addAction(save)
        bar.addSeparator()
        bar.addWidget(QtWidgets.QLabel(" " + HELP))
        self.toolbar = bar

    def _wire(self) -> None:
        v = self.view
        v.played.connect(self._on_play)
        v.label_changed.connect(self._on_label_changed)
        v.label_deleted.connect(self._on_label_deleted)
        v.region_changed.connect(self._on_region_changed)
        v.region_deleted.connect(self._on_region_deleted)
        v.label_requested.connect(self._ask_label)
        v.region_requested.connect(self._ask_region)
        v.dataset_requested.connect(self._make_dataset)
        v.rename_requested.connect(self._ask_rename)
        self._save_timer = QtCore.QTimer(self, singleShot=True, interval=SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_map)
        self._tick = QtCore.QTimer(self, interval=1000)
        self._tick.timeout.connect(self._refresh)
        self._tick.start()
        self.view.scene().sigMouseMoved.connect(self._on_hover)
        self.bridge = _Bridge(self)
        self.bridge.changed.connect(self.apply_state, QtCore.Qt.ConnectionType.QueuedConnection)
        if self.link is not None:
            self.link.notify = self.bridge.changed.emit

    def _refresh(self) -> None:
        self.status.refresh_connection()
        self.view.local_echo = not self.status.alive()

    def set_map(self, latent_map: LatentMap | None) -> None:
        """Show another map (e.g. once a first-run build has finished)."""
        self.map = latent_map
        self.view.set_map(latent_map)
        if latent_map is not None:
            model = latent_map.params.get("model", {})
            if model:
                self.status.show_map_model(
                    f"map: {model.get('name', '?')} · {model.get('samplerate', '?')} Hz · "
                    f"{latent_map.n_points} points"
                )

    # ------------------------------------------------------------------ state in
    def apply_state(self) -> None:
        """Apply everything received since the last call (runs on the GUI thread)."""
        if self.link is None:
            return
        snap = self.link.take()
        self.apply_snapshot(snap)

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Apply one :class:`ui.link.Snapshot` to the view and status bar."""
        values = snap.values
        now = time.monotonic()
        if "xy" in values:
            self._xy_at = now
        if "latent" in values:
            self._latent_at = now
            self._latent_since = self._latent_since or now
        xy = self._cursor_from(values)
        if xy is not None:
            self.view.set_cursor(*xy)
        for event in snap.events:
            self._apply_event(event)
        if "model" in values:
            self._check_model(values["model"])
        was_alive = self.status.alive()
        self.status.apply(values, snap.last_seen)
        alive = self.status.alive()
        self.view.local_echo = not alive
        if alive and not was_alive:
            self._announce_marks()

    def engine_has_map(self) -> bool | None:
        """Whether the engine interpolates ``/sillage/xy`` itself; ``None`` while unknown."""
        if self._latent_at is None or self._latent_since is None:
            return None
        if self._xy_at is not None and self._latent_at - self._xy_at < 1.0:
            return True
        # Latents for a second and no xy with them: the engine has no map.
        return False if self._latent_at - self._latent_since >= 1.0 else None

    def _cursor_from(self, values: dict[str, object]) -> tuple[float, float] | None:
        # Our own map places the played latent consistently with the points we draw, even if
        # the engine interpolates with another map; fall back to the engine's xy.
        z = values.get("latent")
        if self.map is not None and isinstance(z, np.ndarray) and z.size == self.map.latent_size:
            return self.map.to_xy(z)
        xy = values.get("xy")
        if isinstance(xy, tuple) and len(xy) >= 2:
            return float(xy[0]), float(xy[1])
        return None

    def _check_model(self, model: Any) -> None:
        """Warn when the map was built for another model than the one the engine plays."""
        if self.map is None or len(model) < 4:
            return
        built_for = self.map.params.get("model", {}).get("name")
        warn = ""
        if int(model[3]) != self.map.latent_size:
            warn = (f"map has latent size {self.map.latent_size}, the engine's model "
                    f"{int(model[3])}: pass --map or --model for {model[0]}")  # fmt: skip
        elif built_for and built_for != model[0]:
            warn = f"map built for {built_for}, engine plays {model[0]}"
        self.status.warning.setText(warn or self.stale_warning)

    def _on_hover(self, scene_pos: QtCore.QPointF) -> None:
        # Which sound is here: the source file and moment of the nearest corpus frame.
        m = self.map
        if m is None or self.view.projection:
            return
        p = self.view.viewbox.mapSceneToView(scene_pos)
        i = m.nearest(p.x(), p.y())
        if float(np.hypot(*(m.xy[i] - (p.x(), p.y())))) > 0.02:
            self.status.hover.setText("")
            return
        parts = []
        if m.source_index is not None and m.source_files:
            parts.append(m.source_files[int(m.source_index[i]) % len(m.source_files)])
        if m.time_s is not None:
            parts.append(f"{float(m.time_s[i]):.2f} s")
        if m.loudness_db is not None:
            parts.append(f"{float(m.loudness_db[i]):.0f} dBFS")
        if m.centroid_hz is not None:
            parts.append(f"{float(m.centroid_hz[i]):.0f} Hz")
        self.status.hover.setText(" · ".join(parts))

    def _apply_event(self, event: tuple[Any, ...]) -> None:
        kind, args = event[0], event[1:]
        try:
            if kind == "label":
                self.view.set_label(str(args[0]), float(args[1]), float(args[2]), announce=False)
                self._save_soon()
            elif kind == "label/delete":
                self.view.remove_label(str(args[0]), announce=False)
                self._save_soon()
            elif kind == "region":
                x0, y0, x1, y1 = (float(a) for a in args[1:5])
                self.view.set_region(str(args[0]), (x0, y0, x1, y1), announce=False)
                self._save_soon()
            elif kind == "region/delete":
                self.view.remove_region(str(args[0]), announce=False)
                self._save_soon()
            elif kind == "example":
                self._set_example(int(args[0]), np.asarray(args[1:], dtype=np.float32))
            elif kind == "tag":
                self.view.add_tag(str(args[0]), float(args[1]), float(args[2]))
            elif kind == "train":
                self.status.showMessage(_train_text(args), 0 if args[0] == "train" else 15000)
            elif kind == "dataset":
                self.status.showMessage(f"dataset {args[0]} written to {args[1]}: {args[2]}", 15000)
            elif kind == "example/clear":
                self._examples.clear()
                self.view.set_examples([])
        except (IndexError, TypeError, ValueError):
            self.status.showMessage(f"ignored malformed state message {kind} {args!r}", 5000)

    def _make_dataset(self, region: str) -> None:
        if self.link is None:
            self.status.showMessage("no engine: datasets are built by the engine", 5000)
            return
        self.link.send_dataset_region(region, region)
        self.status.showMessage(f"building dataset {region} from region {region}…", 5000)

    def _set_example(self, index: int, z: np.ndarray) -> None:
        if self.map is None or z.size != self.map.latent_size:
            return
        self._examples[index] = self.map.to_xy(z)
        self.view.set_examples(list(self._examples.values()))

    def _announce_marks(self) -> None:
        """On (re)connection tell the engine (and through it Max, other UIs) our marks.

        An engine that restarted has forgotten them; one that kept running just hears them again.
        """
        self.connected.emit()
        if self.link is None:
            return
        for name, (x, y) in self.view.label_positions().items():
            self.link.send_label(name, x, y)
        for name, box in self.view.region_boxes().items():
            self.link.send_region(name, box)

    # ------------------------------------------------------------------ performer in
    def _on_play(self, x: float, y: float) -> None:
        if self.link is None:
            return
        latent = self.send == "latent" or (self.send == "auto" and self.engine_has_map() is False)
        if latent and self.map is not None:
            self.link.send_latent(self.map.to_latent(x, y))
        else:
            self.link.send_xy(x, y)

    def _on_label_changed(self, name: str, x: float, y: float) -> None:
        if self.link is not None:
            self.link.send_label(name, x, y)
        self._save_soon()

    def _on_label_deleted(self, name: str) -> None:
        if self.link is not None:
            self.link.send_label_delete(name)
        self._save_soon()

    def _on_region_changed(self, name: str, x0: float, y0: float, x1: float, y1: float) -> None:
        if self.link is not None:
            self.link.send_region(name, (x0, y0, x1, y1))
        self._save_soon()

    def _on_region_deleted(self, name: str) -> None:
        if self.link is not None:
            self.link.send_region_delete(name)
        self._save_soon()

    def _ask_label(self, x: float, y: float) -> None:
        name, ok = QtWidgets.QInputDialog.getText(self, "New label", "Name this place:")
        if ok and name.strip():
            self.view.set_label(name.strip(), x, y)

    def _ask_region(self, x: float, y: float) -> None:
        name, ok = QtWidgets.QInputDialog.getText(self, "New region", "Name this region:")
        if ok and name.strip():
            h = 0.1
            box = (max(x - h, 0.0), max(y - h, 0.0), min(x + h, 1.0), min(y + h, 1.0))
            self.view.set_region(name.strip(), box)

    def _ask_rename(self, kind: str, old: str) -> None:
        name, ok = QtWidgets.QInputDialog.getText(self, f"Rename {kind}", "New name:", text=old)
        if ok:
            self.view.rename(kind, old, name.strip())

    # ------------------------------------------------------------------ persistence
    def _save_soon(self) -> None:
        # Debounced: dragging a label fires many changes; the file is written once after.
        if self.map_path is not None:
            self._save_timer.start()

    def save_map(self) -> None:
        """Write labels and regions into the map file now."""
        if self.map is None or self.map_path is None:
            return
        self.map.labels = self.view.label_positions()
        self.map.regions = self.view.region_boxes()
        try:
            self.map.save(self.map_path)
        except OSError as e:
            self.status.showMessage(f"could not save labels to {self.map_path}: {e}", 10000)

    # ------------------------------------------------------------------ projection
    def toggle_projection(self) -> None:
        """Switch projection mode on or off."""
        self.set_projection(not self.view.projection)

    def set_projection(self, on: bool, *, fullscreen: bool = True) -> None:
        """Projection mode: full screen, no chrome, a large high-contrast cursor."""
        self.view.set_projection(on)
        self.toolbar.setVisible(not on)
        self.status.setVisible(not on)
        if fullscreen:
            if on:
                self.showFullScreen()
            else:
                self.showNormal()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if self._save_timer.isActive():
            self._save_timer.stop()
            self.save_map()
        if self.link is not None:
            self.link.close()
        super().closeEvent(event)


def _train_text(args: tuple[Any, ...]) -> str:
    """``/sillage/state/train`` (phase, step, loss, minutes left, detail) as one status line."""
    phase, step, loss, left, detail = args[:5]
    if phase == "train":
        shown = f", loss {float(loss):.3f}" if float(loss) >= 0 else ""
        return f"training {detail}: step {int(step)}{shown}, {float(left):.1f} min left".replace(
            "training : ", "training: "
        )
    if phase == "done":
        return f"trained: {detail} (playing it if asked; /sillage/model/undo goes back)"
    return f"training {phase}: {detail}"

"""The map view: corpus points, cursor and trail, labels, regions and examples.

One :class:`pyqtgraph.ScatterPlotItem` holds the corpus and is set once per map; recolouring
changes only its brushes. The cursor moves by updating two small items (cursor and trail), so a
frame costs the same with 200 or 20,000 corpus points: the corpus item is cached as a pixmap.
The view shows map coordinates 0..1 on both axes; y grows upwards, as in the map file.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from functools import partial
from pathlib import PurePath

import numpy as np
import pyqtgraph as pg
from numpy.typing import NDArray
from PySide6 import QtCore, QtGui, QtWidgets

from mappings.latentmap import LatentMap

COLOUR_MODES = ("source", "loudness", "centroid")
TRAIL_LENGTH = 48
_PAD = 0.03
# High-contrast colours readable from across a room on a projector.
CURSOR_COLOUR = (255, 214, 0)
LABEL_COLOUR = (120, 230, 255)
TAG_COLOUR = (255, 110, 90)  # moments tagged while playing (/sillage/tag)
MAX_TAGS = 500
REGION_COLOUR = (255, 120, 200)
EXAMPLE_COLOUR = (255, 255, 255)
_SOURCE_PALETTE = [  # no yellows or oranges: those are the cursor's
    (86, 180, 233), (0, 158, 115), (204, 121, 167), (153, 153, 255),
    (220, 60, 60), (200, 200, 200), (0, 114, 178), (102, 204, 170),
    (153, 204, 51), (255, 153, 153), (120, 90, 200), (0, 190, 190),
]  # fmt: skip


class _MapViewBox(pg.ViewBox):
    """A view box where dragging plays instead of panning; the owner gets map coordinates."""

    def __init__(self, owner: MapView) -> None:
        super().__init__(enableMenu=False)
        self._owner = owner
        self.setMouseEnabled(x=False, y=False)

    def mouseClickEvent(self, ev: object) -> None:
        pos = self.mapSceneToView(ev.scenePos())  # type: ignore[attr-defined]
        button = ev.button()  # type: ignore[attr-defined]
        if button == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()  # type: ignore[attr-defined]
            if ev.double():  # type: ignore[attr-defined]
                self._owner.request_label(pos.x(), pos.y())
            else:
                self._owner.play(pos.x(), pos.y())
        elif button == QtCore.Qt.MouseButton.RightButton:
            ev.accept()  # type: ignore[attr-defined]
            self._owner.context_menu(pos.x(), pos.y(), ev.screenPos())  # type: ignore[attr-defined]

    def mouseDragEvent(self, ev: object, axis: int | None = None) -> None:
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:  # type: ignore[attr-defined]
            ev.ignore()  # type: ignore[attr-defined]
            return
        ev.accept()  # type: ignore[attr-defined]
        pos = self.mapSceneToView(ev.scenePos())  # type: ignore[attr-defined]
        self._owner.play(pos.x(), pos.y())

    def wheelEvent(self, ev: object, axis: int | None = None) -> None:
        ev.ignore()  # type: ignore[attr-defined]  # a fixed map reads better than a zoomable one


class MapView(pg.GraphicsView):
    """The latent map, the live cursor, and the collective's marks.

    Signals
    -------
    played(x, y)
        The performer clicked or dragged at map position ``(x, y)``.
    label_changed(name, x, y), label_deleted(name)
    region_changed(name, x0, y0, x1, y1), region_deleted(name)
    label_requested(x, y), region_requested(x, y)
        The performer asked to create a label or region here (the window asks for a name).
    rename_requested(kind, name)
        The performer asked to rename a ``"label"`` or ``"region"``.
    """

    played = QtCore.Signal(float, float)
    label_changed = QtCore.Signal(str, float, float)
    label_deleted = QtCore.Signal(str)
    region_changed = QtCore.Signal(str, float, float, float, float)
    region_deleted = QtCore.Signal(str)
    label_requested = QtCore.Signal(float, float)
    region_requested = QtCore.Signal(float, float)
    dataset_requested = QtCore.Signal(str)
    rename_requested = QtCore.Signal(str, str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, background="k")
        self.viewbox = _MapViewBox(self)
        self.setCentralItem(self.viewbox)
        self.viewbox.setRange(xRange=(-_PAD, 1 + _PAD), yRange=(-_PAD, 1 + _PAD), padding=0)
        self.viewbox.disableAutoRange()
        self.map: LatentMap | None = None
        self.colour_mode = "source"
        self.projection = False

        self.frame = pg.PlotCurveItem(
            [0, 1, 1, 0, 0], [0, 0, 1, 1, 0], pen=pg.mkPen(60, 60, 60, width=1)
        )
        self.corpus = pg.ScatterPlotItem(pxMode=True, size=5, pen=None, symbol="o")
        # The corpus changes only with the map or the colour mode: cache it as a pixmap so a
        # moving cursor repaints the pixmap instead of 20,000 fragments.
        self.corpus.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.examples = pg.ScatterPlotItem(
            pxMode=True, size=14, symbol="star", pen=pg.mkPen(0, 0, 0), brush=EXAMPLE_COLOUR
        )
        self.trail = pg.ScatterPlotItem(pxMode=True, pen=None, symbol="o")
        self.cursor = pg.ScatterPlotItem(pxMode=True, symbol="o")
        self.touch = pg.ScatterPlotItem(
            pxMode=True, symbol="o", size=30, brush=None, pen=pg.mkPen(255, 255, 255, 180, width=2)
        )
        self.touch.setZValue(98)
        self.viewbox.addItem(self.touch)
        self.local_echo = True  # the window turns it off while an engine sends state
        for z, item in enumerate((self.frame, self.corpus, self.examples, self.trail, self.cursor)):
            item.setZValue(z)
            self.viewbox.addItem(item)
        self.cursor.setZValue(100)
        self.trail.setZValue(99)
        self._trail: deque[tuple[float, float]] = deque(maxlen=TRAIL_LENGTH)
        self._cursor_xy: tuple[float, float] | None = None
        self.labels: dict[str, pg.TargetItem] = {}
        self.tags: list[pg.TextItem] = []
        self.legend = pg.LegendItem(offset=(-10, 10), labelTextColor=(200, 200, 200))
        self.legend.setParentItem(self.viewbox)
        self.legend.setZValue(200)
        self.regions: dict[str, tuple[pg.ROI, pg.TextItem]] = {}
        self._style()

    # ------------------------------------------------------------------ corpus
    def set_map(self, latent_map: LatentMap | None) -> None:
        """Show ``latent_map`` (its points, labels and regions); ``None`` clears the view."""
        self.map = latent_map
        for name in list(self.labels):
            self.remove_label(name, announce=False)
        for name in list(self.regions):
            self.remove_region(name, announce=False)
        if latent_map is None:
            self.corpus.clear()
            return
        xy = latent_map.xy
        self.corpus.setData(x=xy[:, 0], y=xy[:, 1], brush=self._brushes())
        for name, (x, y) in latent_map.labels.items():
            self.set_label(name, x, y, announce=False)
        for name, box in latent_map.regions.items():
            self.set_region(name, box, announce=False)

    def set_colour_mode(self, mode: str) -> None:
        """Colour corpus points by ``"source"``, ``"loudness"`` or ``"centroid"``."""
        if mode not in COLOUR_MODES:
            raise ValueError(f"colour mode must be one of {COLOUR_MODES}, got {mode!r}")
        self.colour_mode = mode
        if self.map is not None:
            self.corpus.setBrush(self._brushes())

    def _brushes(self) -> list[QtGui.QBrush]:
        m = self.map
        assert m is not None
        alpha = 150 if self.projection else 200
        values = {"loudness": m.loudness_db, "centroid": m.centroid_hz}.get(self.colour_mode)
        if values is None or not np.isfinite(values).any():
            lut = [pg.mkBrush(*c, alpha) for c in _SOURCE_PALETTE]
            names, group = source_groups(m.source_files)
            index = m.source_index if m.source_index is not None else np.zeros(m.n_points, int)
            per_point = group[np.clip(index, 0, len(group) - 1)] if len(group) else index
            self._legend(
                [(n, _SOURCE_PALETTE[i % len(_SOURCE_PALETTE)]) for i, n in enumerate(names)]
            )
            return [lut[i % len(lut)] for i in per_point.tolist()]
        if self.colour_mode == "centroid":
            values = np.log2(np.maximum(values, 20.0))
            ends = ("dark", "bright")
        else:
            ends = ("quiet", "loud")
        lo, hi = _VIRIDIS_ENDS
        self._legend([(ends[0], lo), (ends[1], hi)])
        return _ramp_brushes(values, alpha)

    def _legend(self, entries: list[tuple[str, tuple[int, int, int]]]) -> None:
        """Show what the colours mean (at most 12 entries; hidden in projection mode)."""
        legend = self.legend
        legend.clear()
        for name, colour in entries[:12]:
            sample = pg.ScatterPlotItem(size=10, pen=None, symbol="o", brush=pg.mkBrush(*colour))
            legend.addItem(sample, name)
        legend.setVisible(bool(entries) and not self.projection and len(entries) <= 12)

    # ------------------------------------------------------------------ cursor
    def set_cursor(self, x: float, y: float) -> None:
        """Move the live cursor to ``(x, y)``; the previous positions fade as a trail."""
        self._cursor_xy = (x, y)
        self._trail.append((x, y))
        self.cursor.setData([x], [y])
        pts = np.array(self._trail, dtype=float)
        n = len(pts)
        self.trail.setData(pos=pts, brush=self._trail_brushes[-n:], size=self._trail_sizes[-n:])

    def cursor_xy(self) -> tuple[float, float] | None:
        """Where the cursor is, or ``None`` before the first position."""
        return self._cursor_xy

    def play(self, x: float, y: float) -> None:
        """The performer touched ``(x, y)``: mark it, tell the window.

        The touch gets a ring; the cursor and trail follow the engine's state (what is
        actually playing, after smoothing). Without an engine (``local_echo``) the cursor
        follows the touch.
        """
        x, y = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
        self.touch.setData([x], [y])
        if self.local_echo:
            self.set_cursor(x, y)
        self.played.emit(x, y)

    # ------------------------------------------------------------------ examples
    def set_examples(self, xy: NDArray[np.float32] | Sequence[tuple[float, float]]) -> None:
        """Show regression-by-demonstration examples (their latents' map positions)."""
        pts = np.asarray(xy, dtype=float).reshape(-1, 2)
        self.examples.setData(pos=pts)

    # ------------------------------------------------------------------ tags
    def add_tag(self, word: str, x: float, y: float) -> None:
        """Mark where the played latent was when someone tagged a moment with ``word``."""
        item = pg.TextItem(f"◆ {word}", color=TAG_COLOUR, anchor=(0.0, 0.5))
        item.setFont(self._font())
        item.setPos(x, y)
        item.setZValue(40)
        self.viewbox.addItem(item)
        self.tags.append(item)
        if len(self.tags) > MAX_TAGS:  # a long rehearsal: the oldest go
            self.viewbox.removeItem(self.tags.pop(0))

    # ------------------------------------------------------------------ labels
    def set_label(self, name: str, x: float, y: float, *, announce: bool = True) -> None:
        """Create or move the label ``name``."""
        item = self.labels.get(name)
        if item is None:
            item = pg.TargetItem(
                pos=(x, y),
                size=self._label_size(),
                symbol="o",
                pen=pg.mkPen(*LABEL_COLOUR, width=2),
                brush=pg.mkBrush(*LABEL_COLOUR, 90),
                movable=True,
                # A callable, not the string: pyqtgraph would str.format() a name with braces.
                label=partial(_constant, name),
                labelOpts=self._label_opts(),
            )
            item.label().setFont(self._font())
            item.setZValue(50)
            item.sigPositionChangeFinished.connect(self._label_moved)
            self.viewbox.addItem(item)
            self.labels[name] = item
        else:
            item.blockSignals(True)
            item.setPos(x, y)
            item.blockSignals(False)
        if announce:
            self.label_changed.emit(name, float(x), float(y))

    def remove_label(self, name: str, *, announce: bool = True) -> None:
        """Delete the label ``name`` (no error if it is not there)."""
        item = self.labels.pop(name, None)
        if item is not None:
            self.viewbox.removeItem(item)
            if announce:
                self.label_deleted.emit(name)

    def rename(self, kind: str, old: str, new: str) -> None:
        """Rename a label or region: announced as a delete and a create, like any OSC peer sees it."""
        if not new or new == old:
            return
        if kind == "label" and old in self.labels:
            x, y = self.label_positions()[old]
            self.remove_label(old)
            self.set_label(new, x, y)
        elif kind == "region" and old in self.regions:
            box = self.region_boxes()[old]
            self.remove_region(old)
            self.set_region(new, box)

    def label_positions(self) -> dict[str, tuple[float, float]]:
        """Current labels, name -> (x, y)."""
        return {n: (float(i.pos().x()), float(i.pos().y())) for n, i in self.labels.items()}

    def _label_moved(self, item: pg.TargetItem) -> None:
        for name, other in self.labels.items():
            if other is item:
                x = min(max(item.pos().x(), 0.0), 1.0)
                y = min(max(item.pos().y(), 0.0), 1.0)
                self.set_label(name, x, y)
                return

    # ------------------------------------------------------------------ regions
    def set_region(
        self, name: str, box: tuple[float, float, float, float], *, announce: bool = True
    ) -> None:
        """Create or change the region ``name``, ``box = (x0, y0, x1, y1)``."""
        x0, y0, x1, y1 = box
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        entry = self.regions.get(name)
        if entry is None:
            roi = pg.ROI(
                (x0, y0),
                (x1 - x0, y1 - y0),
                pen=pg.mkPen(*REGION_COLOUR, width=2),
                # The inside stays playable: move by the corner handle, resize by the other.
                movable=False,
                rotatable=False,
                removable=False,
            )
            roi.addTranslateHandle((0, 1))
            roi.addScaleHandle((1, 0), (0, 1))
            roi.setZValue(40)
            text = pg.TextItem(name, color=REGION_COLOUR, anchor=(0, 1))
            text.setFont(self._font())
            text.setZValue(41)
            roi.sigRegionChangeFinished.connect(self._region_moved)
            roi.sigRemoveRequested.connect(self._region_remove_requested)
            self.viewbox.addItem(roi)
            self.viewbox.addItem(text)
            self.regions[name] = (roi, text)
        else:
            roi, text = entry
            roi.blockSignals(True)
            roi.setPos((x0, y0))
            roi.setSize((x1 - x0, y1 - y0))
            roi.blockSignals(False)
        text.setPos(x0 + 0.015, y1)  # clear of the move handle at the corner
        if announce:
            self.region_changed.emit(name, float(x0), float(y0), float(x1), float(y1))

    def remove_region(self, name: str, *, announce: bool = True) -> None:
        """Delete the region ``name`` (no error if it is not there)."""
        entry = self.regions.pop(name, None)
        if entry is not None:
            for item in entry:
                self.viewbox.removeItem(item)
            if announce:
                self.region_deleted.emit(name)

    def region_boxes(self) -> dict[str, tuple[float, float, float, float]]:
        """Current regions, name -> (x0, y0, x1, y1)."""
        out = {}
        for name, (roi, _) in self.regions.items():
            p, s = roi.pos(), roi.size()
            out[name] = (float(p.x()), float(p.y()), float(p.x() + s.x()), float(p.y() + s.y()))
        return out

    def _region_name(self, roi: pg.ROI) -> str | None:
        return next((n for n, (r, _) in self.regions.items() if r is roi), None)

    def _region_moved(self, roi: pg.ROI) -> None:
        name = self._region_name(roi)
        if name is not None:
            self.set_region(name, self.region_boxes()[name])

    def _region_remove_requested(self, roi: pg.ROI) -> None:
        name = self._region_name(roi)
        if name is not None:
            self.remove_region(name)

    # ------------------------------------------------------------------ menus
    def request_label(self, x: float, y: float) -> None:
        """Ask (through the window) for a name for a new label at ``(x, y)``."""
        self.label_requested.emit(x, y)

    def context_menu(self, x: float, y: float, screen_pos: QtCore.QPointF) -> None:
        """Right-click menu: add a label or region here, delete the nearest label."""
        menu = QtWidgets.QMenu(self)
        menu.addAction("Add label here…", partial(self.label_requested.emit, x, y))
        menu.addAction("Add region here…", partial(self.region_requested.emit, x, y))
        near = self._nearest_label(x, y)
        if near is not None:
            menu.addAction(
                f"Rename label '{near}'…", partial(self.rename_requested.emit, "label", near)
            )
            menu.addAction(f"Delete label '{near}'", partial(self.remove_label, near))
        for name, box in self.region_boxes().items():
            if box[0] <= x <= box[2] and box[1] <= y <= box[3]:
                menu.addAction(
                    f"Rename region '{name}'…", partial(self.rename_requested.emit, "region", name)
                )
                menu.addAction(f"Delete region '{name}'", partial(self.remove_region, name))
                menu.addAction(
                    f"Make a dataset from region '{name}'",
                    partial(self.dataset_requested.emit, name),
                )
        colour = menu.addMenu("Colour by")
        for mode in COLOUR_MODES:
            colour.addAction(mode, partial(self.set_colour_mode, mode))
        menu.popup(QtCore.QPoint(int(screen_pos.x()), int(screen_pos.y())))

    def _nearest_label(self, x: float, y: float, radius: float = 0.05) -> str | None:
        best, best_d = None, radius
        for name, (lx, ly) in self.label_positions().items():
            d = float(np.hypot(lx - x, ly - y))
            if d < best_d:
                best, best_d = name, d
        return best

    # ------------------------------------------------------------------ style
    def set_projection(self, on: bool) -> None:
        """Projection mode: a large high-contrast cursor and large labels for a dancer."""
        self.projection = on
        self._style()
        if self.map is not None:
            self.corpus.setBrush(self._brushes())
        for name, item in list(self.labels.items()):
            pos = item.pos()
            self.remove_label(name, announce=False)
            self.set_label(name, pos.x(), pos.y(), announce=False)
        for _, text in self.regions.values():
            text.setFont(self._font())

    def _label_size(self) -> int:
        return 26 if self.projection else 14

    def _font(self) -> QtGui.QFont:
        font = QtGui.QFont()
        font.setPointSize(26 if self.projection else 11)
        font.setBold(self.projection)
        return font

    def _label_opts(self) -> dict[str, object]:
        return {
            "color": LABEL_COLOUR,
            "offset": (10, -10),
            "anchor": (0, 1),
            "fill": (0, 0, 0, 160),
        }

    def _style(self) -> None:
        big = self.projection
        self.corpus.setSize(7 if big else 5)
        self.cursor.setSize(64 if big else 22)
        self.cursor.setPen(pg.mkPen(255, 255, 255, width=5 if big else 2))
        self.cursor.setBrush(pg.mkBrush(*CURSOR_COLOUR, 255))
        self.frame.setVisible(not big)
        ramp = np.linspace(0.05, 1.0, TRAIL_LENGTH)
        self._trail_brushes = [pg.mkBrush(*CURSOR_COLOUR, int(200 * a)) for a in ramp]
        self._trail_sizes = (ramp * (40 if big else 14)).tolist()
        if self._cursor_xy is not None:
            self.cursor.setData([self._cursor_xy[0]], [self._cursor_xy[1]])


def source_groups(source_files: list[str]) -> tuple[list[str], NDArray[np.intp]]:
    """Group source files for colouring: by folder, else by name without digits, else by file.

    A corpus of ``train_000_pluck.wav, train_001_bell.wav, ...`` is coloured by family
    (``pluck``, ``bell``), one in folders by folder; a dozen colours is what the eye separates.

    Returns
    -------
    names : list of str
        Group names, in order of first appearance.
    group : ndarray, shape (len(source_files),)
        Group index of each file.
    """
    words = [re.sub(r"[\d_\-\s.]+", " ", PurePath(f).stem).split() for f in source_files]
    common = set.intersection(*(set(w) for w in words)) if words else set()
    candidates = [
        [str(PurePath(f).parent) for f in source_files],
        [
            " ".join(t for t in w if t not in common) or f
            for w, f in zip(words, source_files, strict=True)
        ],
    ]
    keys = list(source_files)
    for c in candidates:
        if 1 < len(set(c)) <= len(_SOURCE_PALETTE) and len(set(c)) < len(source_files):
            keys = c
            break
    names = list(dict.fromkeys(keys))
    lookup = {n: i for i, n in enumerate(names)}
    return names, np.array([lookup[k] for k in keys], dtype=np.intp)


def _constant(text: str, *_: object) -> str:
    return text


_VIRIDIS_ENDS = ((68, 1, 84), (253, 231, 37))


def _ramp_brushes(values: NDArray[np.floating], alpha: int) -> list[QtGui.QBrush]:
    """Brushes from a perceptual colour map over the 2nd..98th percentile of ``values``."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    lo, hi = np.percentile(values, [2, 98]) if len(values) else (0.0, 1.0)
    t = np.clip((values - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    cmap = pg.colormap.get("viridis")
    colours = cmap.getLookupTable(0.0, 1.0, 64, alpha=False)
    lut = [pg.mkBrush(int(r), int(g), int(b), alpha) for r, g, b in colours]
    return [lut[i] for i in np.round(t * 63).astype(int).tolist()]

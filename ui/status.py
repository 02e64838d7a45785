"""The status bar: model, sample rate, latency terms, decode time, underruns, level meter."""

from __future__ import annotations

import time

from PySide6 import QtCore, QtGui, QtWidgets

# An engine that has sent nothing for this long is shown as not connected.
STALE_S = 3.0
LATENCY_TERMS = ("wait", "prebuffer", "block", "device", "model")


class LevelMeter(QtWidgets.QWidget):
    """A horizontal RMS bar with a peak tick, -60..0 dBFS; red above -1 dBFS."""

    FLOOR_DB = -60.0

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.rms_db = self.FLOOR_DB
        self.peak_db = self.FLOOR_DB
        self.setMinimumSize(120, 14)
        self.setMaximumHeight(16)
        self.setToolTip("Output level (RMS bar, peak tick), dBFS")

    def set_level(self, rms_db: float, peak_db: float) -> None:
        """Show a new level; repaints lazily with the rest of the window."""
        self.rms_db, self.peak_db = rms_db, peak_db
        self.update()

    def _x(self, db: float) -> int:
        t = (min(max(db, self.FLOOR_DB), 0.0) - self.FLOOR_DB) / -self.FLOOR_DB
        return int(t * (self.width() - 2))

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), QtGui.QColor(25, 25, 25))
        hot = self.peak_db > -1.0
        p.fillRect(1, 2, self._x(self.rms_db), self.height() - 4,
                   QtGui.QColor(220, 60, 60) if hot else QtGui.QColor(80, 200, 120))  # fmt: skip
        p.fillRect(1 + self._x(self.peak_db), 1, 2, self.height() - 2, QtGui.QColor(240, 240, 240))
        p.end()


class StatusBar(QtWidgets.QStatusBar):
    """What the engine reports, refreshed from the latest state (never per message)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.connection = QtWidgets.QLabel("engine: not connected")
        self.model = QtWidgets.QLabel("model: -")
        self.latency = QtWidgets.QLabel("latency: -")
        self.decode = QtWidgets.QLabel("decode: -")
        self.underruns = QtWidgets.QLabel("underruns: -")
        self.prebuffer = QtWidgets.QLabel("prebuffer: -")  # its last change in the tooltip
        self.warning = QtWidgets.QLabel("")
        self.warning.setStyleSheet("color: #ff9050")
        self.error = QtWidgets.QLabel("")  # the engine's last rejected input, for 5 s
        self.error.setStyleSheet("color: #ff5050")
        self._error_timer = QtCore.QTimer(self, singleShot=True, interval=5000)
        self._error_timer.timeout.connect(lambda: self.error.setText(""))
        self.hover = QtWidgets.QLabel("")  # the corpus point under the pointer
        self.meter = LevelMeter()
        for w in (
            self.connection,
            self.model,
            self.latency,
            self.prebuffer,
            self.decode,
            self.underruns,
        ):
            self.addWidget(w)
        self.addWidget(self.warning)
        self.addWidget(self.error)
        self.addPermanentWidget(self.hover)
        self.addPermanentWidget(self.meter)
        self.last_seen: float | None = None

    def apply(self, values: dict[str, object], last_seen: float | None) -> None:
        """Update from a :class:`ui.link.Snapshot`'s values."""
        if last_seen is not None:
            self.last_seen = last_seen
        if "model" in values:
            name, sr, ratio, latent = (list(values["model"]) + [None] * 4)[:4]  # type: ignore[call-overload]
            self.model.setText(f"model: {name} · {sr} Hz · ratio {ratio} · latent {latent}")
        if "latency_ms" in values:
            v = list(values["latency_ms"])  # type: ignore[call-overload]
            terms = " + ".join(f"{n} {t:.1f}" for n, t in zip(LATENCY_TERMS, v[1:], strict=False))
            self.latency.setText(f"latency: {v[0]:.1f} ms ({terms})" if v else "latency: -")
        if "decode_ms" in values:
            p50, p99 = ([*list(values["decode_ms"]), 0.0, 0.0])[:2]  # type: ignore[call-overload]
            self.decode.setText(f"decode: {p50:.1f} / {p99:.1f} ms (p50/p99)")
        if "prebuffer" in values:
            frames, ms, adaptive, note = ([*list(values["prebuffer"]), 0, 0.0, 0, ""])[:4]  # type: ignore[call-overload]
            auto = " auto" if adaptive else ""
            self.prebuffer.setText(f"prebuffer: {int(frames)} ({float(ms):.1f} ms){auto}")
            self.prebuffer.setToolTip(str(note))
        if "underruns" in values:
            n = int(values["underruns"])  # type: ignore[call-overload]
            self.underruns.setText(f"underruns: {n}")
            self.underruns.setStyleSheet("color: #ff5050; font-weight: bold" if n else "")
        if "level" in values:
            rms, peak = ([*list(values["level"]), -60.0, -60.0])[:2]  # type: ignore[call-overload]
            self.meter.set_level(rms, peak)
        if "error" in values:
            # In its own label: a temporary status message would hide the other fields.
            self.error.setText(f"engine: {values['error'][0]}")  # type: ignore[index]
            self._error_timer.start()
        self.refresh_connection()

    def alive(self) -> bool:
        """Whether the engine sent state in the last few seconds."""
        return self.last_seen is not None and time.monotonic() - self.last_seen < STALE_S

    def refresh_connection(self) -> None:
        """Show whether state is still arriving."""
        alive = self.alive()
        self.connection.setText("engine: connected" if alive else "engine: not connected")
        self.connection.setStyleSheet("color: #50d080" if alive else "color: #ff9050")

    def show_map_model(self, text: str) -> None:
        """Before the engine speaks, show what the map was built with."""
        if self.model.text() == "model: -":
            self.model.setText(text)

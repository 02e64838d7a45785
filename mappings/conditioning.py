"""Conditioning of one scalar control signal: range, calibration, filter, dead zone, curve, staleness.

A :class:`Conditioner` turns raw sensor values into a well-behaved number (by default in 0..1)
in this order, every step optional::

    raw ─► calibration capture ─► range / centre (to 0..1) ─► filter (1€ or one-pole)
        ─► dead zone ─► curve ─► output range

Normalising before filtering keeps 1€ ``beta`` comparable across signals of different units.
:class:`Staleness` then holds the last value when the sensor falls silent and eases it to a
rest value, so a dropped sensor never jumps the sound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mappings.filters import OneEuro, OnePole

CURVES = ("linear", "pow", "exp", "log", "smooth")


def apply_curve(u: float, curve: str, amount: float) -> float:
    """Shape ``u`` in 0..1 into 0..1 (monotonic, endpoints kept).

    ``pow``: ``u**amount``; ``exp``/``log``: exponential ease in/out of steepness ``amount``;
    ``smooth``: smoothstep.
    """
    if curve == "linear":
        return u
    if curve == "pow":
        return u**amount
    if curve == "exp":
        return math.expm1(amount * u) / math.expm1(amount)
    if curve == "log":
        return math.log1p(math.expm1(amount) * u) / amount
    if curve == "smooth":
        return u * u * (3.0 - 2.0 * u)
    raise ValueError(f"unknown curve {curve!r}; expected one of {', '.join(CURVES)}")


def dead_zone(u: float, rest: float, width: float) -> float:
    """Snap ``u`` to ``rest`` within ``width``; rescale outside so the map stays continuous.

    ``u`` and ``rest`` in 0..1; ``rest`` is 0 (unipolar) or 0.5 (bipolar).
    """
    if width <= 0.0:
        return u
    d = u - rest
    span = (1.0 - rest) if d > 0 else rest  # room between the rest point and the range edge
    if span <= width:
        return rest
    if abs(d) <= width:
        return rest
    return rest + math.copysign((abs(d) - width) / (span - width) * span, d)


@dataclass
class ConditionerSpec:
    """How to condition one signal (a patch's ``[conditioning."<signal>"]`` table).

    Attributes
    ----------
    range : (float, float)
        Raw values mapped to 0..1 (clipped unless ``clip`` is false).
    centre : float or None
        Raw rest value mapped to 0.5 (bipolar signals, e.g. tilt); None for unipolar.
    filter : str
        ``"none"``, ``"one_euro"`` or ``"one_pole"``.
    dead_zone : float
        Width around the rest point (0 or 0.5 after normalisation), in 0..1 units.
    curve, curve_amount : str, float
        See :func:`apply_curve`.
    out : (float, float)
        Output range.
    rest : float or None
        Output value a stale signal eases to; default the output at the rest point.
    hold_s, ease_s : float or None
        Silence after which the value starts easing to rest, and the easing time. ``hold_s``
        None (MIDI faders, Wekinator inputs) holds forever.
    """

    range: tuple[float, float] = (0.0, 1.0)
    centre: float | None = None
    clip: bool = True
    filter: str = "none"
    min_cutoff_hz: float = 1.0
    beta: float = 0.0
    d_cutoff_hz: float = 1.0
    cutoff_hz: float = 5.0
    dead_zone: float = 0.0
    curve: str = "linear"
    curve_amount: float = 2.0
    out: tuple[float, float] = (0.0, 1.0)
    rest: float | None = None
    hold_s: float | None = 0.5
    ease_s: float = 1.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "") -> ConditionerSpec:
        """Build from a TOML table; raise ``ValueError`` naming the bad key and the rule."""
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(data) - known)
        if extra:
            raise ValueError(
                f"{where}: unknown conditioning key(s) {extra}; known: {sorted(known)}"
            )
        kw: dict[str, Any] = dict(data)
        for key in ("range", "out"):
            if key in kw:
                pair = kw[key]
                if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                    raise ValueError(f"{where}: {key} must be two numbers [lo, hi], got {pair!r}")
                kw[key] = (float(pair[0]), float(pair[1]))
        if "hold_s" in kw and kw["hold_s"] is not None and float(kw["hold_s"]) < 0:
            kw["hold_s"] = None  # TOML has no null: a negative hold means "hold forever"
        spec = cls(**kw)
        spec.check(where)
        return spec

    def check(self, where: str = "") -> None:
        lo, hi = self.range
        if not lo < hi:
            raise ValueError(f"{where}: range must have lo < hi, got {self.range}")
        if self.centre is not None and not lo < self.centre < hi:
            raise ValueError(f"{where}: centre {self.centre} must lie inside range {self.range}")
        if self.filter not in ("none", "one_euro", "one_pole"):
            raise ValueError(
                f"{where}: filter must be none, one_euro or one_pole, got {self.filter!r}"
            )
        if self.curve not in CURVES:
            raise ValueError(f"{where}: curve must be one of {CURVES}, got {self.curve!r}")
        if self.curve in ("exp", "log") and self.curve_amount == 0:
            raise ValueError(f"{where}: curve_amount must be non-zero for {self.curve}")
        if self.curve == "pow" and self.curve_amount <= 0:
            raise ValueError(f"{where}: curve_amount must be > 0 for pow")
        if not 0.0 <= self.dead_zone < 0.5:
            raise ValueError(f"{where}: dead_zone must be in [0, 0.5), got {self.dead_zone}")
        if self.ease_s < 0:
            raise ValueError(f"{where}: ease_s must be >= 0, got {self.ease_s}")


class Conditioner:
    """Stateful conditioning of one scalar signal (see the module docstring).

    ``Conditioner(None)`` passes values through unchanged (rest value 0).
    """

    def __init__(self, spec: ConditionerSpec | None = None) -> None:
        self.identity = spec is None
        self.spec = spec or ConditionerSpec()
        self.range = self.spec.range
        self.centre = self.spec.centre
        self._filter: OneEuro | OnePole | None = None
        if self.spec.filter == "one_euro":
            self._filter = OneEuro(self.spec.min_cutoff_hz, self.spec.beta, self.spec.d_cutoff_hz)
        elif self.spec.filter == "one_pole":
            self._filter = OnePole(self.spec.cutoff_hz)
        self._capture: list[float] | None = None
        self.last_raw = math.nan

    @property
    def bipolar(self) -> bool:
        return self.centre is not None

    @property
    def rest(self) -> float:
        """Output value at the rest point (what a stale signal eases to)."""
        if self.spec.rest is not None:
            return self.spec.rest
        if self.identity:
            return 0.0
        return self._output(0.5 if self.bipolar else 0.0)

    def reset(self) -> None:
        if self._filter is not None:
            self._filter.reset()

    # --- calibration ---------------------------------------------------------------------
    def start_calibration(self) -> None:
        """Start capturing min/max of the raw values (move through the whole gesture)."""
        self._capture = [math.inf, -math.inf]

    def stop_calibration(self) -> bool:
        """Use the captured min/max as the range; False (range kept) if too little was seen."""
        cap, self._capture = self._capture, None
        if cap is None or not cap[0] < cap[1]:
            return False
        self.range = (cap[0], cap[1])
        if self.centre is not None and not cap[0] < self.centre < cap[1]:
            self.centre = 0.5 * (cap[0] + cap[1])
        return True

    def set_centre(self, raw: float | None = None) -> None:
        """Make ``raw`` (default: the last raw value) the rest point, mapped to 0.5."""
        value = self.last_raw if raw is None else raw
        lo, hi = self.range
        if math.isfinite(value) and lo < value < hi:
            self.centre = value

    # --- processing ----------------------------------------------------------------------
    def normalise(self, x: float) -> float:
        """Raw value to 0..1 through range (and centre, piecewise linear)."""
        lo, hi = self.range
        if self.centre is None:
            u = (x - lo) / (hi - lo)
        elif x < self.centre:
            u = 0.5 * (x - lo) / (self.centre - lo)
        else:
            u = 0.5 + 0.5 * (x - self.centre) / (hi - self.centre)
        if self.spec.clip:
            u = min(max(u, 0.0), 1.0)
        return u

    def _shape(self, u: float) -> float:
        spec = self.spec
        if self.bipolar:
            u = dead_zone(u, 0.5, spec.dead_zone)
            # Curves act on the distance from the centre so both sides stay symmetric.
            d = min(abs(u - 0.5) * 2.0, 1.0)
            u = 0.5 + math.copysign(0.5 * apply_curve(d, spec.curve, spec.curve_amount), u - 0.5)
        else:
            u = dead_zone(u, 0.0, spec.dead_zone)
            u = apply_curve(min(max(u, 0.0), 1.0), spec.curve, spec.curve_amount)
        return u

    def _output(self, u: float) -> float:
        a, b = self.spec.out
        return a + (b - a) * u

    def __call__(self, t: float, x: float) -> float:
        """Condition raw value ``x`` taken at time ``t`` (seconds). Runs on the decode worker."""
        self.last_raw = x
        if self.identity:
            return x
        if self._capture is not None:
            self._capture[0] = min(self._capture[0], x)
            self._capture[1] = max(self._capture[1], x)
        u = self.normalise(x)
        if self._filter is not None:
            u = float(self._filter(t, u))
        return self._output(self._shape(u))


class Staleness:
    """Hold a signal's last value when it falls silent, then ease it to rest.

    ``value(t)`` is the held value until ``hold_s`` after the last update, then a smoothstep
    from the held value to ``rest`` over ``ease_s``. A sensor that comes back after easing
    started does not jump either: the value glides from where the ease had got to over
    ``return_s``.
    """

    def __init__(
        self, rest: float, hold_s: float | None = 0.5, ease_s: float = 1.0, return_s: float = 0.25
    ) -> None:
        self.rest = float(rest)
        self.hold_s = hold_s
        self.ease_s = float(ease_s)
        self.return_s = float(return_s)
        self.held = self.rest
        self.t_last = -math.inf
        self._from = self.rest
        self._t_return = -math.inf

    def update(self, t: float, value: float) -> None:
        if self.hold_s is not None and self.t_last > -math.inf and not self.fresh(t):
            self._from = self.value(t)
            self._t_return = t
        elif self.t_last == -math.inf and self.hold_s is not None:
            # First value ever (or after panic): glide in from rest rather than jump.
            self._from = self.rest
            self._t_return = t
        self.held = float(value)
        self.t_last = t

    def reset(self) -> None:
        self.held = self.rest
        self.t_last = -math.inf
        self._from = self.rest
        self._t_return = -math.inf

    def fresh(self, t: float) -> bool:
        return self.hold_s is None or t - self.t_last <= self.hold_s

    def value(self, t: float) -> float:
        """Held or eased value at time ``t``. Runs on the decode worker."""
        if self.hold_s is None or self.t_last == -math.inf:
            return self.held
        late = t - self.t_last - self.hold_s
        if late <= 0.0:
            since = t - self._t_return
            if 0.0 <= since < self.return_s:
                s = since / self.return_s
                return self._from + (self.held - self._from) * (s * s * (3.0 - 2.0 * s))
            return self.held
        if self.ease_s <= 0.0 or late >= self.ease_s:
            return self.rest
        s = late / self.ease_s
        w = s * s * (3.0 - 2.0 * s)
        return self.held + (self.rest - self.held) * w


def condition_many(conditioners: list[Conditioner], t: float, xs: np.ndarray) -> np.ndarray:
    """Condition a vector of raw values, one conditioner each. Runs on the decode worker."""
    return np.array([c(t, float(x)) for c, x in zip(conditioners, xs, strict=True)])

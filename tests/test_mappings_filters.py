"""1€ filter, one-pole, conditioning and stale-input handling (mappings/, pure numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mappings.conditioning import Conditioner, ConditionerSpec, Staleness, apply_curve, dead_zone
from mappings.filters import OneEuro, OnePole

RATE_HZ = 100.0


def _run(filt, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.array([float(filt(float(ti), xi)) for ti, xi in zip(t, x, strict=True)])


def _lag_s(t: np.ndarray, y: np.ndarray, speed: float, x0: float, t0: float) -> float:
    """Steady lag on a ramp x = x0 + speed (t - t0): how far behind in time the output is."""
    return float(np.median((x0 + speed * (t - t0) - y) / speed))


def test_one_euro_less_jitter_at_rest_than_one_pole_at_equal_lag() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(0, 4.0, 1.0 / RATE_HZ)
    noise = rng.normal(0.0, 0.01, t.size)
    rest = t < 2.0
    speed = 2.0  # units per second: a fast sweep of a 0..1 control
    x = np.where(rest, 0.0, speed * (t - 2.0)) + noise
    euro = _run(OneEuro(min_cutoff_hz=1.0, beta=2.0, d_cutoff_hz=1.0), t, x)
    moving = t > 3.0  # steady part of the ramp
    lag_euro = _lag_s(t[moving], euro[moving], speed, 0.0, 2.0)
    # One-pole at the same lag: bisect its cutoff (log scale) until its ramp lag matches.
    lo, hi = 0.1, 200.0
    for _ in range(40):
        cutoff = math.sqrt(lo * hi)
        pole = _run(OnePole(cutoff), t, x)
        lag_pole = _lag_s(t[moving], pole[moving], speed, 0.0, 2.0)
        lo, hi = (cutoff, hi) if lag_pole > lag_euro else (lo, cutoff)
    assert lag_pole == pytest.approx(lag_euro, rel=0.05)
    settled = (t > 1.0) & rest
    jitter_euro = float(np.std(euro[settled]))
    jitter_pole = float(np.std(pole[settled]))
    print(
        f"lag {lag_euro * 1000:.1f} ms; jitter at rest 1€ {jitter_euro:.5f}, one-pole {jitter_pole:.5f}"
    )
    assert jitter_euro < 0.6 * jitter_pole


def test_filters_are_rate_independent_and_vectorised() -> None:
    # The same ramp sampled at 50 Hz and 200 Hz ends at (nearly) the same filtered value.
    ends = []
    for rate in (50.0, 200.0):
        t = np.arange(0, 1.0 + 1e-9, 1.0 / rate)
        f = OnePole(3.0)
        y = _run(f, t, np.where(t > 0.2, 1.0, 0.0))
        ends.append(y[-1])
    assert ends[0] == pytest.approx(ends[1], abs=0.03)
    f2 = OneEuro(1.0, 0.5)
    out = f2(0.0, np.array([1.0, 2.0, 3.0]))
    out = f2(0.01, np.array([1.0, 2.0, 3.0]))
    assert out.shape == (3,)
    np.testing.assert_allclose(out, [1.0, 2.0, 3.0])


def test_one_euro_duplicate_timestamps_do_not_divide_by_zero() -> None:
    f = OneEuro(1.0, 1.0)
    f(0.0, 0.0)
    assert np.isfinite(f(0.0, 1.0))
    assert np.isfinite(f(0.01, 1.0))


def test_curves_and_dead_zone_are_continuous_and_keep_endpoints() -> None:
    for curve in ("linear", "pow", "exp", "log", "smooth"):
        assert apply_curve(0.0, curve, 2.0) == pytest.approx(0.0, abs=1e-12)
        assert apply_curve(1.0, curve, 2.0) == pytest.approx(1.0)
        us = np.linspace(0, 1, 101)
        vs = [apply_curve(u, curve, 2.0) for u in us]
        assert np.all(np.diff(vs) >= -1e-12)
    assert dead_zone(0.52, 0.5, 0.05) == 0.5
    assert dead_zone(0.5501, 0.5, 0.05) == pytest.approx(0.5, abs=1e-3)
    assert dead_zone(1.0, 0.5, 0.05) == pytest.approx(1.0)
    assert dead_zone(0.0, 0.5, 0.05) == pytest.approx(0.0)


def test_conditioner_range_centre_calibration() -> None:
    c = Conditioner(ConditionerSpec(range=(-1.0, 1.0), centre=0.0, out=(-2.0, 2.0)))
    assert c(0.0, 0.0) == pytest.approx(0.0)
    assert c(0.0, 1.0) == pytest.approx(2.0)
    assert c(0.0, -5.0) == pytest.approx(-2.0)  # clipped
    assert c.rest == pytest.approx(0.0)
    c.start_calibration()
    for k, v in enumerate(np.linspace(-0.5, 0.25, 20)):
        c(k * 0.01, float(v))
    assert c.stop_calibration()
    assert c.range == pytest.approx((-0.5, 0.25))
    c.set_centre(-0.1)
    assert c(1.0, -0.1) == pytest.approx(0.0)
    assert c(1.0, 0.25) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="range must have lo < hi"):
        ConditionerSpec.from_dict({"range": [1, 0]}, where="x")
    with pytest.raises(ValueError, match="unknown conditioning key"):
        ConditionerSpec.from_dict({"cutof": 3}, where="x")


def test_stale_input_holds_then_eases_to_rest_without_jumps() -> None:
    s = Staleness(rest=0.0, hold_s=0.5, ease_s=1.0, return_s=0.25)
    for k in range(100):
        s.update(k * 0.01, 1.0)  # last update at t = 0.99
    t = np.arange(0.99, 4.0, 1.0 / 200.0)
    v = np.array([s.value(float(x)) for x in t])
    assert v[t < 0.99 + 0.5].min() == pytest.approx(1.0)  # held
    assert v[-1] == pytest.approx(0.0)  # at rest
    assert np.max(np.abs(np.diff(v))) < 0.02  # eased, no jump
    # The sensor comes back while at rest: the value glides back, it does not jump.
    s.update(4.0, 1.0)
    t2 = np.arange(4.0, 4.5, 1.0 / 200.0)
    v2 = np.array([s.value(float(x)) for x in t2])
    assert v2[0] == pytest.approx(0.0, abs=1e-9)
    assert np.max(np.abs(np.diff(v2))) < 0.03
    never = Staleness(rest=0.3)
    assert never.value(10.0) == pytest.approx(0.3)
    forever = Staleness(rest=0.0, hold_s=None)
    forever.update(0.0, 0.7)
    assert forever.value(1e6) == pytest.approx(0.7)


def test_scalar_and_array_paths_agree() -> None:
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.uniform(0.002, 0.02, 300))
    x = np.cumsum(rng.normal(0, 0.1, 300))
    for make in (lambda: OneEuro(1.0, 0.7, 1.0), lambda: OnePole(4.0)):
        a, b = make(), make()
        ys = [a(float(ti), float(xi)) for ti, xi in zip(t, x, strict=True)]
        yv = [float(b(float(ti), np.array([xi]))[0]) for ti, xi in zip(t, x, strict=True)]
        assert all(type(y) is float for y in ys)
        np.testing.assert_allclose(ys, yv, rtol=1e-12, atol=1e-12)

"""Regression by demonstration: exact at the examples, continuous between, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from mappings.matrix import LoopMapping, MatrixMapping, build_matrix
from mappings.regression import Demonstrations, KNNRegressor, MLPRegressor


def _data(n: int = 12, n_in: int = 3, n_out: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, n_in)) * np.array([1.0, 90.0, 0.01])[:n_in]  # mixed units
    y = rng.normal(0, 1, (n, n_out))
    return x, y


def test_knn_exact_at_examples() -> None:
    x, y = _data()
    knn = KNNRegressor(k=4).fit(x, y)
    for xi, yi in zip(x, y, strict=True):
        np.testing.assert_allclose(knn.predict(xi), yi, atol=1e-12)


def test_knn_continuous_along_a_path_through_all_examples() -> None:
    x, y = _data(n=10)
    knn = KNNRegressor(k=3).fit(x, y)
    steps = 2000
    path = np.concatenate([np.linspace(x[i], x[i + 1], steps) for i in range(len(x) - 1)])
    out = np.array([knn.predict(p) for p in path])
    jumps = np.abs(np.diff(out, axis=0)).max()
    span = np.abs(np.diff(y, axis=0)).max()
    # Continuous: the largest step between neighbouring path points shrinks with the step size.
    assert jumps < 0.05 * span
    assert np.all(np.isfinite(out))


def test_knn_duplicates_are_averaged_and_few_examples_work() -> None:
    knn = KNNRegressor(k=4).fit(np.array([[0.0], [0.0], [1.0]]), np.array([[0.0], [2.0], [5.0]]))
    assert knn.predict(np.array([0.0]))[0] == pytest.approx(1.0)
    assert knn.predict(np.array([1.0]))[0] == pytest.approx(5.0)
    assert 1.0 < knn.predict(np.array([0.5]))[0] < 5.0


def test_mlp_fits_a_smooth_function() -> None:
    x = np.linspace(-1, 1, 40)[:, None]
    y = np.hstack([np.sin(2 * x), x**2])
    mlp = MLPRegressor(hidden=16, seed=1).fit(x, y, steps=1500)
    pred = np.array([mlp.predict(xi) for xi in x])
    assert np.abs(pred - y).max() < 0.1


def test_demonstrations_record_train_run_save_load(tmp_path) -> None:
    x, y = _data()
    for model in ("knn", "mlp"):
        demos = Demonstrations(3, 4, model=model)
        for xi, yi in zip(x, y, strict=True):
            demos.add(xi, yi)
        assert demos.train(mlp_steps=300)
        path = tmp_path / f"{model}.json"
        demos.save(path)
        back = Demonstrations.load(path)
        assert len(back) == len(demos)
        q = x[0] * 0.5
        np.testing.assert_allclose(back.predict(q), demos.predict(q), atol=1e-9)
        if model == "knn":
            np.testing.assert_allclose(back.predict(x[3]), y[3], atol=1e-12)
    with pytest.raises(ValueError, match="not a Sillage regression file"):
        Demonstrations.from_dict({"format": "x"})


def test_matrix_mapping_around_centre_and_padding() -> None:
    m = build_matrix([[1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 1.0]], 2, 3)
    assert m.shape == (2, 3)
    np.testing.assert_allclose(m, [[1, 2, 3], [0, 1, 0]])
    mapping = MatrixMapping(m, x_rest=np.array([0.5, 0.0]))
    centre = np.array([1.0, -1.0, 0.0])
    np.testing.assert_allclose(mapping(np.array([0.5, 0.0]), centre), centre)
    np.testing.assert_allclose(mapping(np.array([1.5, 1.0]), centre), centre + np.array([1, 3, 3]))
    np.testing.assert_allclose(build_matrix(None, 3, 2), [[1, 0], [0, 1], [1, 0]])


def test_loop_mapping_follows_trajectory_and_adds_offsets() -> None:
    traj = np.stack([np.arange(10.0), -np.arange(10.0)])
    loop = LoopMapping(traj, frame_rate_hz=10.0, matrix=np.array([[1.0, 0.0]]))
    centre = np.zeros(2)
    z0 = loop(0.0, np.array([0.0]), centre)
    z1 = loop(0.25, np.array([0.0]), centre)
    np.testing.assert_allclose(z0, [0, 0])
    np.testing.assert_allclose(z1, [2.5, -2.5])
    z2 = loop(1.25, np.array([2.0]), centre)  # wrapped to frame 2.5, plus an offset of 2
    np.testing.assert_allclose(z2, [2.5 + 2.0, -2.5])

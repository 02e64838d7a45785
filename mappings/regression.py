"""Regression by demonstration: record (input, latent) pairs, train, run; save and load as JSON.

Two models, both pure numpy so they run in the engine process without a training library:

- :class:`KNNRegressor` — Shepard's modified inverse-distance interpolation over the ``k``
  nearest examples, weights ``((r - d) / (r d))²`` with ``r`` the distance of the (k+1)-th
  example. Exact at the examples (``d = 0``) and continuous everywhere (an example leaves the
  neighbour set with weight zero). Training is instantaneous. scikit-learn's
  ``KNeighborsRegressor(weights="distance")`` is neither continuous (plain 1/d weights jump when
  the neighbour set changes) nor importable without scipy/joblib on the decode path, hence this.
- :class:`MLPRegressor` — one tanh hidden layer, trained by full-batch Adam in small slices
  (:meth:`MLPRegressor.train_steps`) so the engine can train a few steps per frame without
  holding the decode worker (the architecture forbids long work on it). Smoother than kNN,
  not exact at the examples.

Inputs are standardised with the examples' mean and spread, so one feature in degrees does not
drown one in 0..1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "sillage-regression-1"


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-9] = 1.0
    return mean, std


class KNNRegressor:
    """Continuous k-nearest-neighbour interpolation, exact at the examples.

    Parameters
    ----------
    k : int
        Neighbours used (all examples when there are at most ``k``).
    """

    kind = "knn"

    def __init__(self, k: int = 4) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = int(k)
        self.x: np.ndarray | None = None
        self.y: np.ndarray | None = None
        self.mean = np.zeros(0)
        self.std = np.ones(0)

    @property
    def trained(self) -> bool:
        return self.x is not None

    def fit(self, x: np.ndarray, y: np.ndarray) -> KNNRegressor:
        """Store examples ``x`` (n, n_in) → ``y`` (n, n_out); duplicate inputs are averaged."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(x) == 0:
            raise ValueError(
                f"need matching (n, n_in) and (n, n_out) examples, got {x.shape}, {y.shape}"
            )
        self.mean, self.std = _standardiser(x)
        xs = (x - self.mean) / self.std
        uniq, inverse = np.unique(xs.round(12), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        ys = np.zeros((len(uniq), y.shape[1]))
        np.add.at(ys, inverse, y)
        ys /= np.bincount(inverse, minlength=len(uniq))[:, None]
        self.x, self.y = uniq, ys
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Output for one input, shape (n_in,) → (n_out,). Runs on the decode worker."""
        if self.x is None or self.y is None:
            raise RuntimeError("KNNRegressor: no examples; record some and train first")
        q = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        d = np.sqrt(((self.x - q) ** 2).sum(axis=1))
        n = len(d)
        hit = int(np.argmin(d))
        if d[hit] < 1e-12:
            return self.y[hit].copy()
        if n <= self.k:
            idx = np.arange(n)
            w = 1.0 / d**2
        else:
            part = np.argpartition(d, self.k)[: self.k + 1]
            part = part[np.argsort(d[part])]
            idx, r = part[: self.k], d[part[self.k]]
            w = ((r - d[idx]) / (r * d[idx])) ** 2
            if not w.sum() > 0.0:  # k-th and (k+1)-th equidistant from everything: fall back
                w = 1.0 / d[idx] ** 2
        w = w / w.sum()
        return w @ self.y[idx]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "k": self.k}


class MLPRegressor:
    """One-hidden-layer tanh network trained by Adam on standardised data.

    Parameters
    ----------
    hidden : int
        Hidden units.
    seed : int
        Weight initialisation (training is deterministic for a given seed and data).
    """

    kind = "mlp"

    def __init__(
        self, hidden: int = 16, *, lr: float = 0.01, seed: int = 0, l2: float = 1e-4
    ) -> None:
        self.hidden = int(hidden)
        self.lr = float(lr)
        self.seed = int(seed)
        self.l2 = float(l2)
        self.params: dict[str, np.ndarray] = {}
        self.steps = 0
        self.loss = math.inf
        self._data: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def trained(self) -> bool:
        return bool(self.params)

    def start(self, x: np.ndarray, y: np.ndarray) -> None:
        """Set the data and initialise weights; then call :meth:`train_steps`."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        self.x_mean, self.x_std = _standardiser(x)
        self.y_mean, self.y_std = _standardiser(y)
        xs = (x - self.x_mean) / self.x_std
        ys = (y - self.y_mean) / self.y_std
        rng = np.random.default_rng(self.seed)
        n_in, n_out = x.shape[1], y.shape[1]
        self.params = {
            "w1": rng.normal(0.0, 1.0 / math.sqrt(n_in), (n_in, self.hidden)),
            "b1": np.zeros(self.hidden),
            "w2": rng.normal(0.0, 1.0 / math.sqrt(self.hidden), (self.hidden, n_out)),
            "b2": np.zeros(n_out),
        }
        self._m = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._v = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._data = (xs, ys)
        self.steps = 0

    def train_steps(self, n: int) -> float:
        """Run ``n`` Adam steps (each costs ~20 µs for tens of examples); return the loss."""
        if self._data is None:
            return self.loss
        xs, ys = self._data
        p = self.params
        b1, b2, eps = 0.9, 0.999, 1e-8
        for _ in range(n):
            h = np.tanh(xs @ p["w1"] + p["b1"])
            err = h @ p["w2"] + p["b2"] - ys
            self.loss = float((err**2).mean())
            g_out = 2.0 * err / err.size
            grads = {"w2": h.T @ g_out + self.l2 * p["w2"], "b2": g_out.sum(axis=0)}
            g_h = (g_out @ p["w2"].T) * (1.0 - h * h)
            grads["w1"] = xs.T @ g_h + self.l2 * p["w1"]
            grads["b1"] = g_h.sum(axis=0)
            self.steps += 1
            for k, g in grads.items():
                self._m[k] = b1 * self._m[k] + (1 - b1) * g
                self._v[k] = b2 * self._v[k] + (1 - b2) * g * g
                m_hat = self._m[k] / (1 - b1**self.steps)
                v_hat = self._v[k] / (1 - b2**self.steps)
                p[k] -= self.lr * m_hat / (np.sqrt(v_hat) + eps)
        return self.loss

    def fit(self, x: np.ndarray, y: np.ndarray, steps: int = 2000) -> MLPRegressor:
        self.start(x, y)
        self.train_steps(steps)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Output for one input, shape (n_in,) → (n_out,). Runs on the decode worker."""
        if not self.params:
            raise RuntimeError("MLPRegressor: not trained; record examples and train first")
        p = self.params
        xs = (np.asarray(x, dtype=np.float64) - self.x_mean) / self.x_std
        h = np.tanh(xs @ p["w1"] + p["b1"])
        return (h @ p["w2"] + p["b2"]) * self.y_std + self.y_mean

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "hidden": self.hidden, "seed": self.seed}
        if self.params:
            out["weights"] = {k: v.tolist() for k, v in self.params.items()}
            out["norm"] = {
                "x_mean": self.x_mean.tolist(), "x_std": self.x_std.tolist(),
                "y_mean": self.y_mean.tolist(), "y_std": self.y_std.tolist(),
            }  # fmt: skip
        return out

    def load_weights(self, data: dict[str, Any]) -> None:
        if "weights" in data:
            self.params = {k: np.asarray(v, dtype=np.float64) for k, v in data["weights"].items()}
            norm = data["norm"]
            self.x_mean, self.x_std = np.asarray(norm["x_mean"]), np.asarray(norm["x_std"])
            self.y_mean, self.y_std = np.asarray(norm["y_mean"]), np.asarray(norm["y_std"])


class Demonstrations:
    """Examples plus a model: the record / train / run cycle of Wekinator and IRCAM's "I3".

    Parameters
    ----------
    n_inputs, n_outputs : int
    model : str
        ``"knn"`` or ``"mlp"``.
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        *,
        model: str = "knn",
        k: int = 4,
        hidden: int = 16,
        seed: int = 0,
    ) -> None:
        if model not in ("knn", "mlp"):
            raise ValueError(f"regression model must be 'knn' or 'mlp', got {model!r}")
        self.n_inputs, self.n_outputs = int(n_inputs), int(n_outputs)
        self.model_kind = model
        self.inputs: list[np.ndarray] = []
        self.outputs: list[np.ndarray] = []
        self.knn = KNNRegressor(k)
        self.mlp = MLPRegressor(hidden, seed=seed)
        self._knn_ready = False
        self.max_steps = 2000

    def __len__(self) -> int:
        return len(self.inputs)

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Record one example: inputs shape (n_inputs,), outputs shape (n_outputs,)."""
        self.inputs.append(np.array(x, dtype=np.float64).reshape(self.n_inputs))
        self.outputs.append(np.array(y, dtype=np.float64).reshape(self.n_outputs))

    def clear(self) -> None:
        self.inputs.clear()
        self.outputs.clear()
        self.knn = KNNRegressor(self.knn.k)
        self.mlp = MLPRegressor(self.mlp.hidden, seed=self.mlp.seed)
        self._knn_ready = False

    @property
    def trained(self) -> bool:
        return self.mlp.trained if self.model_kind == "mlp" else self._knn_ready

    def train(self, *, mlp_steps: int | None = None) -> bool:
        """Fit on the recorded examples; False when there are none.

        The kNN is ready at once; the MLP is initialised and trained ``mlp_steps`` steps (None:
        leave it to :meth:`train_steps`, called a few at a time by the engine).
        """
        if not self.inputs:
            return False
        x, y = np.stack(self.inputs), np.stack(self.outputs)
        self.knn.fit(x, y)
        self._knn_ready = True
        if self.model_kind == "mlp":
            self.mlp.start(x, y)
            if mlp_steps:
                self.mlp.train_steps(mlp_steps)
        return True

    def train_steps(self, n: int) -> None:
        """Continue MLP training by ``n`` steps, until ``max_steps`` (then this costs nothing)."""
        if (
            self.model_kind == "mlp"
            and self.mlp._data is not None
            and self.mlp.steps < self.max_steps
        ):
            self.mlp.train_steps(min(n, self.max_steps - self.mlp.steps))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Runs on the decode worker. Until the MLP has trained a little, the kNN answers."""
        if self.model_kind == "mlp" and self.mlp.trained and self.mlp.steps >= 200:
            return self.mlp.predict(x)
        return self.knn.predict(x)

    # --- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "n_inputs": self.n_inputs,
            "n_outputs": self.n_outputs,
            "model": self.model_kind,
            "knn": self.knn.to_dict(),
            "mlp": self.mlp.to_dict(),
            "inputs": [v.tolist() for v in self.inputs],
            "outputs": [v.tolist() for v in self.outputs],
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()), encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Demonstrations:
        if data.get("format") != FORMAT:
            raise ValueError(
                f"not a Sillage regression file (format {data.get('format')!r}, expected {FORMAT})"
            )
        demo = cls(
            data["n_inputs"], data["n_outputs"], model=data.get("model", "knn"),
            k=data.get("knn", {}).get("k", 4), hidden=data.get("mlp", {}).get("hidden", 16),
            seed=data.get("mlp", {}).get("seed", 0),
        )  # fmt: skip
        for x, y in zip(data.get("inputs", []), data.get("outputs", []), strict=True):
            demo.add(np.asarray(x), np.asarray(y))
        if demo.inputs:
            demo.train()
            demo.mlp.load_weights(data.get("mlp", {}))
            if demo.mlp.trained:
                demo.mlp.steps = max(demo.mlp.steps, 200)
        return demo

    @classmethod
    def load(cls, path: str | Path) -> Demonstrations:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

"""The latent map: fitted latents laid out in 2-D, and the live transforms between them.

A map is a set of latent vectors (frames of a corpus, encoded by the model) and their 2-D
positions (a UMAP fit, done offline by ``python -m ui.map build``), normalised to the map's
bounding box, 0..1 on both axes. The live transforms follow FluCoMa's recipe: find the ``k``
nearest fitted points on one side and take the inverse-distance-weighted mean of their
partners on the other side. umap-learn's own ``transform`` costs 3-5 ms per point after a first
call of seconds; this costs tens of microseconds and needs nothing but numpy and scipy, so the
engine can import it to answer ``/sillage/xy``.

Weights are Shepard's modified ones, ``1/d - 1/r`` with ``r`` the distance of the (k+1)-th
neighbour: a neighbour leaves the set with weight zero, so the transform is continuous where
the neighbour set changes, and it is exact at fitted points (``d = 0``).

The ``MAP.npz`` file (format ``sillage-map-1``) holds:

``latents`` (N, D) float32, ``xy`` (N, 2) float32 in 0..1, ``source_files`` (F,) str,
``source_index`` (N,) int32, ``time_s`` (N,) float32, ``loudness_db`` (N,) float32,
``centroid_hz`` (N,) float32, ``params`` (JSON str: fit parameters, model, k), ``label_names``
(L,) str, ``label_xy`` (L, 2) float32, ``region_names`` (R,) str, ``region_boxes`` (R, 4)
float32 as x0, y0, x1, y1. Strings are stored as numpy unicode arrays, so the file loads with
``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

FORMAT = "sillage-map-1"
DEFAULT_K = 6
# Distances at or below this count as "on a fitted point" (latents are float32).
_EXACT_EPS = 1e-9


class LatentMapError(ValueError):
    """A map file or array that does not follow the ``sillage-map-1`` format."""


@dataclass(eq=False)
class LatentMap:
    """Fitted latents, their 2-D positions, descriptors and the collective's labels.

    Parameters
    ----------
    latents : ndarray, shape (n_points, latent_size), float32
        The fitted latent vectors.
    xy : ndarray, shape (n_points, 2), float32
        Their positions on the map, 0..1 on both axes (the map's bounding box).
    k : int
        Neighbours used by the transforms.
    source_files, source_index, time_s, loudness_db, centroid_hz
        Per-point descriptors (see the module docstring); optional.
    params : dict
        Fit parameters and model information, saved as JSON.
    labels : dict of str to (x, y)
        Named points on the map.
    regions : dict of str to (x0, y0, x1, y1)
        Named rectangles on the map.

    Notes
    -----
    The search trees are built once from ``latents`` and ``xy``: treat those two arrays as
    read-only (make a new map instead). The transforms only read, so the engine may call them
    from several threads.
    """

    latents: NDArray[np.float32]
    xy: NDArray[np.float32]
    k: int = DEFAULT_K
    source_files: list[str] = field(default_factory=list)
    source_index: NDArray[np.int32] | None = None
    time_s: NDArray[np.float32] | None = None
    loudness_db: NDArray[np.float32] | None = None
    centroid_hz: NDArray[np.float32] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, tuple[float, float]] = field(default_factory=dict)
    regions: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.latents = np.ascontiguousarray(self.latents, dtype=np.float32)
        self.xy = np.ascontiguousarray(self.xy, dtype=np.float32)
        if self.latents.ndim != 2 or self.latents.shape[0] < 1:
            raise LatentMapError(
                f"latents must have shape (n_points, latent_size) with n_points >= 1, "
                f"got {self.latents.shape}"
            )
        if self.xy.shape != (self.latents.shape[0], 2):
            raise LatentMapError(
                f"xy must have shape ({self.latents.shape[0]}, 2) to match latents, "
                f"got {self.xy.shape}"
            )
        if not (np.isfinite(self.latents).all() and np.isfinite(self.xy).all()):
            raise LatentMapError("latents and xy must be finite (found NaN or inf)")
        if self.k < 1:
            raise LatentMapError(f"k must be >= 1, got {self.k}")
        n = self.latents.shape[0]
        # One extra neighbour is the taper radius; with few points use what there is.
        self._k = min(self.k, max(n - 1, 1))
        self._tree_z = cKDTree(self.latents.astype(np.float64))
        self._tree_xy = cKDTree(self.xy.astype(np.float64))
        self._latents64 = self.latents.astype(np.float64)
        self._xy64 = self.xy.astype(np.float64)

    # ------------------------------------------------------------------ properties
    @property
    def latent_size(self) -> int:
        """Number of latent dimensions."""
        return int(self.latents.shape[1])

    @property
    def n_points(self) -> int:
        """Number of fitted points."""
        return int(self.latents.shape[0])

    # ------------------------------------------------------------------ transforms
    def to_xy(self, z: ArrayLike) -> tuple[float, float]:
        """Map a latent vector to its position on the map.

        Parameters
        ----------
        z : array_like, shape (latent_size,)
            A latent vector.

        Returns
        -------
        (x, y) : tuple of float
            Position in map coordinates (0..1 inside the bounding box of the fitted points).
        """
        q = np.asarray(z, dtype=np.float64).reshape(-1)
        if q.shape[0] != self.latent_size:
            raise LatentMapError(f"expected a latent of size {self.latent_size}, got {q.shape[0]}")
        if not np.isfinite(q).all():
            raise LatentMapError(f"latent must be finite, got {q.tolist()}")
        out = _idw(self._tree_z, self._xy64, q, self._k)
        return float(out[0]), float(out[1])

    def to_latent(self, x: float, y: float) -> NDArray[np.float32]:
        """Map a position on the map to a latent vector.

        Parameters
        ----------
        x, y : float
            Position in map coordinates (0..1; outside, the nearest fitted points decide: the
            result never leaves the fitted latents' hull).

        Returns
        -------
        z : ndarray, shape (latent_size,), float32
        """
        q = np.array((float(x), float(y)), dtype=np.float64)
        if not np.isfinite(q).all():
            raise LatentMapError(f"map position must be finite, got ({x}, {y})")
        return _idw(self._tree_xy, self._latents64, q, self._k).astype(np.float32)

    def to_xy_many(self, z: ArrayLike) -> NDArray[np.float32]:
        """Vectorised :meth:`to_xy`.

        Parameters
        ----------
        z : array_like, shape (n, latent_size)

        Returns
        -------
        xy : ndarray, shape (n, 2), float32
        """
        q = np.asarray(z, dtype=np.float64).reshape(-1, self.latent_size)
        return np.array(
            [_idw(self._tree_z, self._xy64, row, self._k) for row in q], dtype=np.float32
        ).reshape(-1, 2)

    def nearest(self, x: float, y: float) -> int:
        """Index of the fitted point nearest to ``(x, y)`` on the map."""
        _, i = self._tree_xy.query((float(x), float(y)), k=1)
        return int(i)

    # ------------------------------------------------------------------ files
    @classmethod
    def load(cls, path: str | os.PathLike[str], *, k: int | None = None) -> LatentMap:
        """Read a ``MAP.npz`` written by :meth:`save` (or ``python -m ui.map build``).

        Parameters
        ----------
        path : path-like
        k : int, optional
            Override the number of neighbours stored in the file.
        """
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {name: f[name] for name in f.files}
        except FileNotFoundError:
            raise
        except Exception as exc:  # zipfile/pickle errors: say which file and what it should be
            raise LatentMapError(f"{path}: not a readable map file ({exc})") from exc
        for name in ("latents", "xy"):
            if name not in data:
                raise LatentMapError(
                    f"{path}: missing array {name!r}; build one with "
                    f"'python -m ui.map build --model MODEL.ts AUDIO_DIR --out {path.name}'"
                )
        params = json.loads(str(data["params"])) if "params" in data else {}
        labels = {
            str(n): (float(p[0]), float(p[1]))
            for n, p in zip(
                data.get("label_names", ()), data.get("label_xy", np.zeros((0, 2))), strict=True
            )
        }
        regions = {
            str(n): tuple(float(v) for v in b)
            for n, b in zip(
                data.get("region_names", ()),
                data.get("region_boxes", np.zeros((0, 4))),
                strict=True,
            )
        }

        def opt(name: str, dtype: type) -> Any:
            return data[name].astype(dtype) if name in data else None

        return cls(
            latents=data["latents"],
            xy=data["xy"],
            k=int(k if k is not None else params.get("k", DEFAULT_K)),
            source_files=[str(s) for s in data.get("source_files", ())],
            source_index=opt("source_index", np.int32),
            time_s=opt("time_s", np.float32),
            loudness_db=opt("loudness_db", np.float32),
            centroid_hz=opt("centroid_hz", np.float32),
            params=params,
            labels=labels,  # type: ignore[arg-type]
            regions=regions,  # type: ignore[arg-type]
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the map to ``path`` atomically (a reader never sees half a file)."""
        path = Path(path)
        n = self.n_points
        params = dict(self.params, k=self.k, format=FORMAT)
        arrays: dict[str, Any] = {
            "format": np.array(FORMAT),
            "latents": self.latents,
            "xy": self.xy,
            "params": np.array(json.dumps(params, sort_keys=True)),
            "source_files": np.array(self.source_files, dtype=str).reshape(-1),
            "source_index": _or(self.source_index, np.zeros(n), np.int32),
            "time_s": _or(self.time_s, np.zeros(n), np.float32),
            "loudness_db": _or(self.loudness_db, np.full(n, np.nan), np.float32),
            "centroid_hz": _or(self.centroid_hz, np.full(n, np.nan), np.float32),
            "label_names": np.array(list(self.labels), dtype=str).reshape(-1),
            "label_xy": np.array(list(self.labels.values()), dtype=np.float32).reshape(-1, 2),
            "region_names": np.array(list(self.regions), dtype=str).reshape(-1),
            "region_boxes": np.array(list(self.regions.values()), dtype=np.float32).reshape(-1, 4),
        }
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp.npz", dir=path.parent or ".")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, **arrays)
            # mkstemp makes the file private (0600); keep the old file's mode, else the umask's.
            os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else _default_mode())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def map_cache_path(model_path: str | os.PathLike[str]) -> Path:
    """Where a map built on first run for ``model_path`` is cached (keyed by the file's bytes).

    ``$XDG_CACHE_HOME/sillage/maps/NAME-HASH.map.npz`` (default ``~/.cache``).
    """
    path = Path(model_path)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sillage" / "maps"
    return base / f"{path.stem}-{model_digest(path)[:12]}.map.npz"


def model_digest(model_path: str | os.PathLike[str]) -> str:
    """SHA-1 of a model file: a map records it, so a map for an older export can be told apart."""
    digest = hashlib.sha1()
    with open(model_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_map(model_path: str | os.PathLike[str]) -> Path | None:
    """The map for a model: ``NAME.map.npz`` beside it, else one cached on first run, else None."""
    path = Path(model_path)
    shipped = path.with_name(path.stem + ".map.npz")
    if shipped.is_file():
        return shipped
    if not path.is_file():
        return None
    cached = map_cache_path(path)
    return cached if cached.is_file() else None


def normalise_xy(xy: ArrayLike) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Scale raw 2-D positions into their bounding box, 0..1 on both axes.

    Returns
    -------
    xy01 : ndarray, shape (n, 2), float32
    bbox : ndarray, shape (2, 2), float64
        ``[[xmin, ymin], [xmax, ymax]]`` of the raw positions.
    """
    raw = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    lo, hi = raw.min(axis=0), raw.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)  # a degenerate axis maps to 0
    return ((raw - lo) / span).astype(np.float32), np.stack([lo, hi])


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _or(value: NDArray[Any] | None, default: NDArray[Any], dtype: type) -> NDArray[Any]:
    return np.asarray(default if value is None else value, dtype=dtype)


def _idw(
    tree: cKDTree, values: NDArray[np.float64], q: NDArray[np.float64], k: int
) -> NDArray[np.float64]:
    """Shepard-tapered inverse-distance-weighted mean of the ``k`` nearest partners' values."""
    n = values.shape[0]
    if n == 1:
        return values[0].copy()
    d, i = tree.query(q, k=k + 1)
    if d[0] <= _EXACT_EPS:
        # On a fitted point: its own partner (mean of exact duplicates, if any).
        return values[i[d <= _EXACT_EPS]].mean(axis=0)
    r = d[k]
    w = 1.0 / d[:k] - 1.0 / r
    total = w.sum()
    if not total > 0.0:  # all k+1 neighbours equidistant: no neighbour is nearer
        return values[i[:k]].mean(axis=0)
    return (w @ values[i[:k]]) / total

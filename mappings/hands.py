"""Hand features from 21 MediaPipe-style landmarks: pinch, openness, palm position and orientation.

Input messages (decoded by :func:`decode_mediapipe` / :func:`decode_generic`):

- mediapipe-osc: ``/mediapipe/hands count (x y z visibility)×21×count`` (port 7500). It sends
  no handedness, so hands are told apart by where they are in the image.
- generic: ``/hand/left`` or ``/hand/right`` with ``(x y z)×21`` (63 numbers) or
  ``(x y z visibility)×21`` (84 numbers).

Coordinates are MediaPipe's: x, y in 0..1 of the image (y down), z relative depth.

**Handedness and mirroring.** A webcam facing the performer shows their right hand on the
image's left; MediaPipe's own handedness labels assume a mirrored (selfie) image and are
therefore swapped on an unmirrored one. ``mirrored = false`` (default, a plain webcam) flips x
so that ``x`` grows toward the performer's right and tells the hands of a mediapipe-osc message
apart accordingly; ``mirrored = true`` for a selfie view. Generic messages are taken at their
word unless ``swap_labels = true`` (a tracker that forwards MediaPipe's raw labels from an
unmirrored camera). Features are always in the performer's frame: ``left`` is the performer's
left hand.

Features per hand (``left.`` / ``right.`` prefix): ``pinch`` (0 open .. 1 thumb and index tips
touching), ``openness`` (0 fist .. 1 flat hand), ``x``, ``y`` (0..1, y up), ``z``, ``roll``
(deg, 0 = fingers up, positive toward the performer's right), ``facing`` (-1..1, 1 = palm toward
the camera), ``present`` (1 while the hand is seen).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mappings.errors import InputError, floats

N_LANDMARKS = 21
WRIST, THUMB_TIP, INDEX_MCP, INDEX_TIP, MIDDLE_MCP, PINKY_MCP = 0, 4, 5, 8, 9, 17
FINGER_TIPS = (8, 12, 16, 20)
PALM = (0, 5, 9, 13, 17)
HAND_FEATURES = ("pinch", "openness", "x", "y", "z", "roll", "facing", "present")
MAX_HANDS = 4

# Ratios to hand size (wrist to middle-finger knuckle) measured on MediaPipe landmarks:
# thumb-index tip distance ~0.15 when pinched, ~1.0 wide open; mean fingertip-to-wrist
# distance ~1.0 in a fist, ~2.0 with the hand flat.
PINCH_RATIO = (0.15, 1.0)
OPEN_RATIO = (1.0, 2.0)


def decode_mediapipe(address: str, args: Sequence[Any]) -> list[np.ndarray]:
    """``/mediapipe/hands count (x y z v)×21×count`` to a list of (21, 3) landmark arrays."""
    if not args:
        raise InputError("arity", f"{address} expects count then (x y z visibility)×21 per hand")
    v = floats(address, args, expected="count then (x y z visibility)×21 per hand")
    count = v[0]
    if count != int(count) or not 0 <= count <= MAX_HANDS:
        raise InputError(
            "range", f"{address} hand count must be an integer 0..{MAX_HANDS}, got {count}"
        )
    n = int(count)
    if len(v) != 1 + n * N_LANDMARKS * 4:
        raise InputError(
            "arity",
            f"{address} with count {n} expects {1 + n * 84} numbers (count + 84 per hand), got {len(v)}",
        )
    return [v[1 + k * 84 : 1 + (k + 1) * 84].reshape(N_LANDMARKS, 4)[:, :3] for k in range(n)]


def decode_generic(address: str, args: Sequence[Any]) -> np.ndarray:
    """``/hand/<side> (x y z)×21`` or ``(x y z v)×21`` to a (21, 3) landmark array."""
    v = floats(address, args, expected="63 numbers (x y z)×21 or 84 (x y z visibility)×21")
    if len(v) == 63:
        return v.reshape(N_LANDMARKS, 3)
    if len(v) == 84:
        return v.reshape(N_LANDMARKS, 4)[:, :3]
    raise InputError("arity", f"{address} expects 63 or 84 numbers (21 landmarks), got {len(v)}")


def hand_features(lm: np.ndarray, *, side: str, mirrored: bool = False) -> dict[str, float]:
    """Features of one hand.

    Parameters
    ----------
    lm : ndarray, shape (21, 3)
        Landmarks in image coordinates (x, y in 0..1, y down; z depth).
    side : str
        ``"left"`` or ``"right"``, the performer's hand (after the mirroring fix).
    mirrored : bool
        Whether the image was a mirror (selfie) view.
    """
    p = lm.astype(np.float64).copy()
    if not mirrored:
        p[:, 0] = 1.0 - p[:, 0]  # x toward the performer's right
    p[:, 1] = 1.0 - p[:, 1]  # y up
    size = float(np.linalg.norm(p[MIDDLE_MCP, :2] - p[WRIST, :2]))
    size = max(size, 1e-4)
    pinch_d = float(np.linalg.norm(p[THUMB_TIP, :2] - p[INDEX_TIP, :2])) / size
    lo, hi = PINCH_RATIO
    pinch = 1.0 - min(max((pinch_d - lo) / (hi - lo), 0.0), 1.0)
    tips = p[list(FINGER_TIPS), :2] - p[WRIST, :2]
    open_r = float(np.mean(np.linalg.norm(tips, axis=1))) / size
    lo, hi = OPEN_RATIO
    openness = min(max((open_r - lo) / (hi - lo), 0.0), 1.0)
    palm = p[list(PALM)].mean(axis=0)
    up = p[MIDDLE_MCP, :2] - p[WRIST, :2]
    roll = math.degrees(math.atan2(up[0], up[1]))
    # Palm normal from two knuckle vectors. In the performer's frame (x right, y up) the
    # right hand's palm faces the camera when the thumb is on the performer's left (the knuckle
    # vectors turn clockwise); the left hand mirrors it.
    a = p[INDEX_MCP, :2] - p[WRIST, :2]
    b = p[PINKY_MCP, :2] - p[WRIST, :2]
    cross = float(a[0] * b[1] - a[1] * b[0]) / (size * size)
    facing = max(-1.0, min(1.0, cross * 2.0)) * (-1.0 if side == "right" else 1.0)
    return {
        "pinch": pinch,
        "openness": openness,
        "x": float(palm[0]),
        "y": float(palm[1]),
        "z": float(palm[2]),
        "roll": roll,
        "facing": facing,
        "present": 1.0,
    }


def assign_sides(
    hands: list[np.ndarray], *, mirrored: bool = False
) -> list[tuple[str, np.ndarray]]:
    """Label the hands of a mediapipe-osc message left/right (performer's) by image position.

    With two hands, the one further toward the performer's right is ``right``; one hand is
    ``right`` when it is on the performer's right half of the image. Extra hands are dropped.
    """

    def perf_x(lm: np.ndarray) -> float:
        x = float(lm[WRIST, 0])
        return x if mirrored else 1.0 - x

    if not hands:
        return []
    if len(hands) == 1:
        return [("right" if perf_x(hands[0]) >= 0.5 else "left", hands[0])]
    a, b = sorted(hands[:2], key=perf_x)
    return [("left", a), ("right", b)]


def generic_side(address: str, *, swap_labels: bool = False) -> str:
    """``/hand/left`` → ``left``; ``swap_labels`` for trackers that forward MediaPipe's raw labels
    on an unmirrored image (they name the wrong hand)."""
    side = address.rsplit("/", 1)[-1].lower()
    if side not in ("left", "right"):
        raise InputError("unknown_address", f"{address}: expected /hand/left or /hand/right")
    if swap_labels:
        side = "left" if side == "right" else "right"
    return side

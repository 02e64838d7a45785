"""Hand features from synthetic 21-landmark hands (mediapipe-osc and generic messages)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mappings.errors import InputError
from mappings.hands import decode_generic, decode_mediapipe, hand_features
from mappings.sources import HandsSource


def synthetic_hand(
    cx: float,
    cy: float,
    *,
    size: float = 0.1,
    open_: float = 1.0,
    pinch: float = 0.0,
    roll_deg: float = 0.0,
    side: str = "right",
    mirrored: bool = False,
) -> np.ndarray:
    """21 landmarks in image coordinates (x right, y down) of an upright hand, palm to camera.

    Built in the performer's frame (x toward the performer's right, y up) and converted to the
    image: an unmirrored camera flips x.
    """
    s = (
        -1.0 if side == "right" else 1.0
    )  # thumb side: right hand's thumb toward the performer's left
    pts = np.zeros((21, 3))
    pts[0] = (0, 0, 0)
    knuckles = {5: 0.35, 9: 0.0, 13: -0.3, 17: -0.55}
    for base, dx in knuckles.items():
        x = s * dx * size
        pts[base] = (x, size, 0)
        length = size * (0.15 + 0.85 * open_)
        for j in range(1, 4):
            pts[base + j] = (x, size + length * j / 3, 0)
    # Thumb: from the wrist toward the thumb side; its tip meets the index tip when pinching.
    thumb_open = np.array([s * 0.9 * size, 0.7 * size, 0.0])
    tip = (1 - pinch) * thumb_open + pinch * pts[8]
    for j in range(1, 5):
        pts[j] = tip * j / 4
    r = math.radians(roll_deg)
    rot = np.array([[math.cos(r), math.sin(r)], [-math.sin(r), math.cos(r)]])
    pts[:, :2] = pts[:, :2] @ rot.T
    pts[:, 0] += cx
    pts[:, 1] += cy
    img = pts.copy()
    if not mirrored:
        img[:, 0] = 1.0 - img[:, 0]
    img[:, 1] = 1.0 - img[:, 1]
    return img


def mediapipe_args(*hands: np.ndarray) -> list[float]:
    args: list[float] = [len(hands)]
    for h in hands:
        args += np.hstack([h, np.ones((21, 1))]).ravel().tolist()
    return args


def test_pinch_openness_position_roll() -> None:
    flat = hand_features(synthetic_hand(0.7, 0.4), side="right")
    assert flat["openness"] > 0.8 and flat["pinch"] < 0.2
    fist = hand_features(synthetic_hand(0.7, 0.4, open_=0.0), side="right")
    assert fist["openness"] < 0.3
    pinched = hand_features(synthetic_hand(0.7, 0.4, pinch=1.0), side="right")
    assert pinched["pinch"] > 0.95
    assert flat["x"] == pytest.approx(0.7, abs=0.05) and flat["y"] > 0.4
    tilted = hand_features(synthetic_hand(0.5, 0.5, roll_deg=30.0), side="right")
    assert tilted["roll"] == pytest.approx(30.0, abs=1.0)
    assert flat["facing"] > 0.3
    left = hand_features(synthetic_hand(0.3, 0.4, side="left"), side="left")
    assert left["facing"] > 0.3  # same sign for both hands after the handedness fix


def test_mediapipe_message_assigns_hands_in_the_performers_frame() -> None:
    right = synthetic_hand(0.75, 0.5, side="right", pinch=1.0)
    left = synthetic_hand(0.25, 0.5, side="left", open_=0.0)
    for mirrored in (False, True):
        r = synthetic_hand(0.75, 0.5, side="right", pinch=1.0, mirrored=mirrored)
        lft = synthetic_hand(0.25, 0.5, side="left", open_=0.0, mirrored=mirrored)
        src = HandsSource("hands", mirrored=mirrored)
        out = src.signals(0.0, "/mediapipe/hands", mediapipe_args(lft, r))
        assert out["hands.right.pinch"] > 0.95, mirrored
        assert out["hands.left.openness"] < 0.3, mirrored
        assert out["hands.right.x"] == pytest.approx(0.75, abs=0.05)
    # One hand leaves the picture: it is reported absent (its features are then held/eased).
    out = HandsSource("hands").signals(0.0, "/mediapipe/hands", mediapipe_args(right))
    assert out["hands.left.present"] == 0.0 and out["hands.right.present"] == 1.0
    assert "hands.left.pinch" not in out
    del left


def test_generic_message_and_label_swap() -> None:
    h = synthetic_hand(0.6, 0.5, side="left", pinch=1.0)
    out = HandsSource("hands").signals(0.0, "/hand/left", h.ravel().tolist())
    assert out["hands.left.pinch"] > 0.95
    swapped = HandsSource("hands", swap_labels=True).signals(0.0, "/hand/left", h.ravel().tolist())
    assert "hands.right.pinch" in swapped
    four = np.hstack([h, np.ones((21, 1))]).ravel().tolist()
    assert decode_generic("/hand/left", four).shape == (21, 3)


@pytest.mark.parametrize(
    ("address", "args", "kind"),
    [
        ("/mediapipe/hands", [], "arity"),
        ("/mediapipe/hands", [1] + [0.5] * 83, "arity"),  # truncated
        ("/mediapipe/hands", [1.5] + [0.5] * 84, "range"),
        ("/mediapipe/hands", [9] + [0.5] * 84, "range"),
        ("/mediapipe/hands", [1] + [0.5] * 83 + [math.nan], "nan"),
        ("/hand/left", [0.5] * 62, "arity"),
        ("/hand/left", ["a"] * 63, "type"),
    ],
)
def test_bad_hand_messages(address, args, kind) -> None:
    with pytest.raises(InputError) as err:
        HandsSource("hands").check(address, args)
    assert err.value.kind == kind


def test_mediapipe_zero_hands_is_valid() -> None:
    assert decode_mediapipe("/mediapipe/hands", [0]) == []

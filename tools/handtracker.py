"""Webcam hand tracker: its own process, sending mediapipe-osc messages to Sillage.

Not part of the engine and never imported by it: MediaPipe 0.10.21 (the last release that ships
its hand model inside the wheel, so it works offline) pins ``numpy<2`` and pulls in jax, which
the engine's environment cannot take. Run it from a separate environment::

    python3.11 -m venv .venv-hands
    .venv-hands/bin/pip install "mediapipe==0.10.21" opencv-python python-osc
    .venv-hands/bin/python tools/handtracker.py --port 7500 [--camera 0] [--show]

It sends, for every camera frame (~30 Hz, ~17 ms of inference per frame measured here):

- ``/mediapipe/hands count (x y z visibility)×21×count`` — the mediapipe-osc format, image
  coordinates of the unflipped camera frame (patch option ``mirrored = false``);
- ``/hand/left`` and ``/hand/right`` with ``(x y z)×21``, labelled with the performer's hand.
  MediaPipe's handedness assumes a mirrored (selfie) image; on the unflipped camera frame its
  "Left" is the performer's right hand, so the labels are swapped here (the mirroring fix), and
  Sillage's ``hands`` input takes them at their word (``swap_labels = false``).

``--mirror`` flips the frame first (a selfie view on screen); then MediaPipe's labels are right
as they are, and the patch needs ``mirrored = true``. No test needs a webcam: the engine side
is tested with synthetic landmarks (``tests/test_mappings_hands.py``).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send webcam hand landmarks to Sillage over OSC")
    parser.add_argument("--host", default="127.0.0.1", help="Sillage's address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=7500, help="OSC port of the hands patch (default 7500)"
    )
    parser.add_argument("--camera", type=int, default=0, help="camera index for OpenCV (default 0)")
    parser.add_argument("--max-hands", type=int, default=2)
    parser.add_argument("--mirror", action="store_true", help="flip the image first (selfie view)")
    parser.add_argument(
        "--show", action="store_true", help="show the camera with landmarks (q quits)"
    )
    args = parser.parse_args(argv)
    try:
        import cv2
        import mediapipe as mp
        from pythonosc.udp_client import SimpleUDPClient
    except ImportError as exc:
        parser.exit(1, f"{exc}. The hand tracker runs in its own environment (mediapipe pins numpy<2):\n"
                       "  python3.11 -m venv .venv-hands && .venv-hands/bin/pip install "
                       '"mediapipe==0.10.21" opencv-python python-osc\n')  # fmt: skip
    client = SimpleUDPClient(args.host, args.port)
    cap = cv2.VideoCapture(args.camera)
    if not cap.isOpened():
        parser.exit(1, f"cannot open camera {args.camera}; try --camera 1 (or check permissions)\n")
    hands = mp.solutions.hands.Hands(
        max_num_hands=args.max_hands, model_complexity=0,
        min_detection_confidence=0.5, min_tracking_confidence=0.5,
    )  # fmt: skip
    print(f"handtracker: camera {args.camera} → {args.host}:{args.port} (Ctrl-C stops)", flush=True)
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                print("handtracker: camera stopped delivering frames", file=sys.stderr)
                return 1
            if args.mirror:
                frame = cv2.flip(frame, 1)
            result = hands.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            found = result.multi_hand_landmarks or []
            labels = result.multi_handedness or []
            flat: list[float] = [float(len(found))]
            for k, lm in enumerate(found):
                pts = [(p.x, p.y, p.z) for p in lm.landmark]
                flat += [v for x, y, z in pts for v in (x, y, z, 1.0)]
                if k < len(labels):
                    label = labels[k].classification[0].label.lower()  # "left" / "right"
                    if not args.mirror:
                        label = "right" if label == "left" else "left"  # the mirroring fix
                    client.send_message(f"/hand/{label}", [v for p in pts for v in p])
            client.send_message("/mediapipe/hands", flat)
            if args.show:
                for lm in found:
                    mp.solutions.drawing_utils.draw_landmarks(
                        frame, lm, mp.solutions.hands.HAND_CONNECTIONS
                    )
                cv2.imshow("Sillage hands", frame)
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    return 0
    except KeyboardInterrupt:
        return 0
    finally:
        cap.release()
        hands.close()


if __name__ == "__main__":
    sys.exit(main())

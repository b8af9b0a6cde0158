"""How clear a face is: brightness, sharpness and whether it is cut by the frame.

Both scores are on Rekognition's ``Quality`` scale (0-100) so one policy
threshold serves both engines:

- ``brightness``: the mean luminance of the face box, 0 black .. 100 white;
- ``sharpness``: the variance of the Laplacian of the face resized to 96 px,
  mapped through ``100 * v / (v + 100)`` (50 at a variance of 100);
- ``partial``: the detected box or the landmarks reach beyond the frame, or
  more than ``HIDDEN_SHARE`` of the landmarks fall on flat black (the face runs
  off the picture into a letterbox, or is covered by something dark).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["HIDDEN_SHARE", "FaceQuality", "face_quality", "hidden_share"]

_SIDE = 96
_EDGE = 2  # pixels: a landmark this close to the border counts as cut off
HIDDEN_SHARE = 0.05
"""Share of the 68 landmarks on flat black above which the face counts as partial: 4 of
68. Measured: 0.059 for a face running off a photo into the letterbox, at most 0.015 on
every face of shared/data that is whole."""
_FLAT_MEAN, _FLAT_STD = 16.0, 4.0  # grey levels of a 5x5 patch: flat black


@dataclass(frozen=True)
class FaceQuality:
    brightness: float
    sharpness: float
    partial: bool


def face_quality(
    gray: np.ndarray,
    box: tuple[int, int, int, int],
    raw_box: tuple[int, int, int, int],
    landmarks: np.ndarray | None = None,
) -> FaceQuality:
    """Quality of one face; ``box`` is clipped to the image, ``raw_box`` is as detected."""
    height, width = gray.shape[:2]
    left, top, w, h = box
    patch = gray[top : top + h, left : left + w]
    if patch.size == 0:
        return FaceQuality(brightness=0.0, sharpness=0.0, partial=True)
    brightness = float(patch.mean()) / 255.0 * 100.0
    small = np.asarray(
        Image.fromarray(patch).resize((_SIDE, _SIDE), Image.Resampling.BILINEAR), dtype=float
    )
    laplacian = (
        -4.0 * small[1:-1, 1:-1]
        + small[:-2, 1:-1]
        + small[2:, 1:-1]
        + small[1:-1, :-2]
        + small[1:-1, 2:]
    )
    variance = float(laplacian.var())
    sharpness = 100.0 * variance / (variance + 100.0)
    raw_left, raw_top, raw_w, raw_h = raw_box
    partial = raw_left < 0 or raw_top < 0 or raw_left + raw_w > width or raw_top + raw_h > height
    if landmarks is not None and not partial:
        points = np.asarray(landmarks, dtype=float)
        partial = bool(
            (points[:, 0] < _EDGE).any()
            or (points[:, 1] < _EDGE).any()
            or (points[:, 0] > width - 1 - _EDGE).any()
            or (points[:, 1] > height - 1 - _EDGE).any()
            or hidden_share(gray, points) > HIDDEN_SHARE
        )
    return FaceQuality(round(brightness, 1), round(sharpness, 1), partial)


def hidden_share(gray: np.ndarray, points: np.ndarray) -> float:
    """Share of landmarks whose 5x5 neighbourhood is flat black."""
    height, width = gray.shape[:2]
    hidden = 0
    for x, y in np.asarray(points, dtype=float):
        cx, cy = round(float(x)), round(float(y))
        patch = gray[max(cy - 2, 0) : min(cy + 3, height), max(cx - 2, 0) : min(cx + 3, width)]
        if patch.size and patch.mean() < _FLAT_MEAN and patch.std() < _FLAT_STD:
            hidden += 1
    return hidden / max(len(points), 1)

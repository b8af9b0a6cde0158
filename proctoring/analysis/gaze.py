"""Where the eyes look: a crude horizontal pupil position from the eye outlines.

For each eye, the pixels inside the six-landmark outline are taken from the
grey image; the darkest quarter of them is the iris and pupil, and the
horizontal position of their centroid between the eye corners is the
ratio: 0 at the corner on the image's left, 1 at the one on its right, about
0.5 looking at the camera. Both eyes are averaged.

Measured on ``center_left_center.mp4`` and ``center_right_center.mp4``
(480x848, eyes about 58 px wide), where the man turns his eyes and not his
head: 0.48-0.57 looking at the camera, 0.31-0.33 looking left, 0.68-0.72
looking right. A band of ±0.11 around 0.5 (the policy's ``gaze_offset``)
separates them with a margin of at least 0.04 on both sides.

Eyes narrower than ``MIN_EYE_PIXELS`` or closed give no ratio: the estimate
would be noise.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["MIN_EYE_PIXELS", "GazeDirection", "gaze_direction", "pupil_ratio"]

GazeDirection = Literal["center", "left", "right"]
MIN_EYE_PIXELS = 12
"""Narrowest eye (corner to corner) whose pupil position is estimated."""
_DARK_FRACTION = 25  # percentile of the eye's pixels taken as iris and pupil


def pupil_ratio(gray: np.ndarray, landmarks: np.ndarray) -> float | None:
    """Mean horizontal pupil position of both eyes (0 image-left .. 1 image-right), or None."""
    points = np.asarray(landmarks, dtype=float)
    ratios = [_eye_ratio(gray, points[start : start + 6]) for start in (36, 42)]
    found = [r for r in ratios if r is not None]
    if not found:
        return None
    return round(float(np.mean(found)), 3)


def gaze_direction(ratio: float | None, offset: float) -> GazeDirection | None:
    """``left`` / ``right`` when the ratio is more than ``offset`` from 0.5, else ``center``."""
    if ratio is None:
        return None
    if ratio < 0.5 - offset:
        return "left"
    if ratio > 0.5 + offset:
        return "right"
    return "center"


def _eye_ratio(gray: np.ndarray, eye: np.ndarray) -> float | None:
    left, right = float(eye[:, 0].min()), float(eye[:, 0].max())
    top, bottom = float(eye[:, 1].min()), float(eye[:, 1].max())
    if right - left < MIN_EYE_PIXELS or bottom - top < 2:
        return None
    x0, y0 = max(int(left), 0), max(int(top), 0)
    x1, y1 = min(int(right) + 1, gray.shape[1]), min(int(bottom) + 1, gray.shape[0])
    if x1 - x0 < MIN_EYE_PIXELS or y1 - y0 < 2:
        return None
    mask_image = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(mask_image).polygon([(x - x0, y - y0) for x, y in eye], fill=255)
    mask = np.asarray(mask_image) > 0
    patch = gray[y0:y1, x0:x1].astype(float)
    values = patch[mask]
    if values.size < 8:
        return None
    dark = (patch <= np.percentile(values, _DARK_FRACTION)) & mask
    _, xs = np.nonzero(dark)
    if xs.size == 0:
        return None
    return float((xs.mean() + x0 - left) / (right - left))

"""Head pose, eyes and mouth from dlib's 68 face landmarks (pure numpy).

Head pose is a scaled-orthographic fit of six landmarks (nose tip, chin,
outer eye corners, mouth corners) to a generic 3-D face: a least-squares
affine map from the model to the image, made the nearest scaled rotation
(SVD), read as Euler angles. At webcam distances perspective is small
against the size of a face, so the weak-perspective fit is within a few
degrees of a full PnP solve and needs no camera matrix.

Conventions (image coordinates, as a proctor sees the frame):

- ``yaw`` > 0: the face turns towards the image's right; < 0: its left.
- ``pitch`` > 0: the face tilts up; < 0: down.
- ``roll`` > 0: the head leans clockwise as seen in the image.

Eyes open and mouth open are aspect ratios of the landmark outlines (the
eye aspect ratio of Soukupova and Cech, 2016, and its analogue for the
inner lips).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EYES_OPEN_RATIO",
    "MOUTH_OPEN_RATIO",
    "Pose",
    "eye_aspect_ratio",
    "head_pose",
    "mouth_aspect_ratio",
]

EYES_OPEN_RATIO = 0.18
"""Mean eye aspect ratio below which the eyes count as closed."""
MOUTH_OPEN_RATIO = 0.30
"""Inner-lip aspect ratio above which the mouth counts as open."""

# A generic face in model units, x to the image's right, y up, z towards the camera
# (nose tip at the origin); landmark indices of the 68-point annotation (iBUG 300-W).
_MODEL_POINTS = np.array(
    [
        (0.0, 0.0, 0.0),  # 30 nose tip
        (0.0, -330.0, -65.0),  # 8 chin
        (-225.0, 170.0, -135.0),  # 36 outer corner of the eye on the image's left
        (225.0, 170.0, -135.0),  # 45 outer corner of the eye on the image's right
        (-150.0, -150.0, -125.0),  # 48 mouth corner, image left
        (150.0, -150.0, -125.0),  # 54 mouth corner, image right
    ]
)
_LANDMARKS = (30, 8, 36, 45, 48, 54)


@dataclass(frozen=True)
class Pose:
    """Head orientation in degrees (see the module docstring for signs)."""

    yaw: float
    pitch: float
    roll: float


def head_pose(landmarks: np.ndarray) -> Pose:
    """Pose of a face from its 68 landmarks (an array of shape (68, 2), image pixels)."""
    image = np.asarray(landmarks, dtype=float)[list(_LANDMARKS)]
    image = np.column_stack([image[:, 0], -image[:, 1]])  # y up, like the model
    model = _MODEL_POINTS
    design = np.column_stack([model, np.ones(len(model))])
    affine, *_ = np.linalg.lstsq(design, image, rcond=None)  # (4, 2): model -> image
    m = affine[:3].T  # (2, 3) = s * R[:2]
    u, _, vt = np.linalg.svd(m, full_matrices=False)
    rows = u @ vt  # the nearest pair of orthonormal rows
    r3 = np.cross(rows[0], rows[1])
    rotation = np.vstack([rows, r3])
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -rotation[2, 0]))))
    pitch = math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    # In the model's frame (x right, y up, z to the camera) a positive yaw turns the nose
    # to +x, the image's right; a positive pitch turns it down; a positive roll is
    # counterclockwise as seen. Pitch and roll are flipped to the documented signs.
    return Pose(yaw=round(yaw, 1), pitch=round(-pitch, 1), roll=round(-roll, 1))


def eye_aspect_ratio(landmarks: np.ndarray) -> float:
    """Mean height/width ratio of both eyes (about 0.3 open, under 0.15 closed)."""
    points = np.asarray(landmarks, dtype=float)
    ratios: list[float] = []
    for start in (36, 42):
        eye = points[start : start + 6]
        vertical = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
        horizontal = np.linalg.norm(eye[0] - eye[3])
        ratios.append(float(vertical / (2.0 * horizontal)) if horizontal else 0.0)
    return float(np.mean(ratios))


def mouth_aspect_ratio(landmarks: np.ndarray) -> float:
    """Inner-lip height/width ratio (0 closed, about 0.5 and more wide open)."""
    points = np.asarray(landmarks, dtype=float)
    inner = points[60:68]
    vertical = (
        np.linalg.norm(inner[1] - inner[7])
        + np.linalg.norm(inner[2] - inner[6])
        + np.linalg.norm(inner[3] - inner[5])
    )
    horizontal = np.linalg.norm(inner[0] - inner[4])
    return float(vertical / (3.0 * horizontal)) if horizontal else 0.0

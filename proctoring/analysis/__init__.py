"""Face analysis: the local dlib engine's CPU side, its types and its errors.

See :mod:`proctoring.analysis.faces`. Importing this package does not import
dlib or load a model; that happens on the first detection in each process.
"""

from __future__ import annotations

from proctoring.analysis.faces import (
    MIN_FACE_PIXELS,
    Face,
    FrameFaces,
    ImageError,
    RegistrationError,
    detect_faces,
    face_distance,
    registration_face,
    warm_up,
)

__all__ = [
    "MIN_FACE_PIXELS",
    "Face",
    "FrameFaces",
    "ImageError",
    "RegistrationError",
    "detect_faces",
    "face_distance",
    "registration_face",
    "warm_up",
]

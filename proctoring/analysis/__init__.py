"""Analysis: one interface (``base``), two engines (``local``, ``rekognition``).

``engine.open_engine`` picks the engine the settings name; ``scheduling``
decides what each chunk is worth analysing. Importing this package does not
import dlib or load a model; that happens on the first detection in each
process. Re-exported here: the local engine's face types and functions.
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

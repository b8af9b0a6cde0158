"""The local engine's CPU side for one frame: faces described, objects detected.

:func:`describe_frame` is a top-level function with picklable arguments and
result, run in the process pool. Per face found by dlib's HOG detector it
(found at native size first and upsampled only where a small face may be,
``faces.find_faces``) computes the 68 landmarks, the head pose, the eyes-open and mouth-open
estimates, the pupil position and the face's quality; the 128-d embedding
only when the plan asks for identity (it is the costly half: ~60 ms of a
~125 ms frame at 640x360). Objects are detected only when an ONNX model is
configured and the plan asks for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from proctoring.analysis.base import DetectedObject, FaceDetail, Plan
from proctoring.analysis.faces import Detection, _box, _decode, _models, find_faces
from proctoring.analysis.gaze import gaze_direction, pupil_ratio
from proctoring.analysis.likeness import face_thumbnail
from proctoring.analysis.objects import DetectorConfig, detect_objects
from proctoring.analysis.pose import (
    EYES_OPEN_RATIO,
    MOUTH_OPEN_RATIO,
    eye_aspect_ratio,
    head_pose,
    mouth_aspect_ratio,
)
from proctoring.analysis.quality import face_quality, picture
from proctoring.analysis.scheduling import identity_wanted

__all__ = ["LocalFrame", "describe_frame"]

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class LocalFrame:
    """What the process-pool worker found in one frame."""

    faces: tuple[FaceDetail, ...]
    width: int
    height: int
    embeddings: tuple[tuple[float, ...], ...] | None = None
    """One per face, in the same order; None when identity was not computed."""
    objects: tuple[DetectedObject, ...] | None = None
    """None when no detection ran (not asked, or no model)."""
    persons: int | None = None
    face_thumbs: tuple[bytes, ...] = ()
    """Per face, in box order: the crop the schedule compares (``face_thumbnail``)."""


def describe_frame(
    image: bytes,
    *,
    upsample: int = 1,
    detection: Detection = "full",
    max_side: int = 1024,
    identity: Literal["yes", "no", "if_changed"] = "yes",
    previous_faces: tuple[Box, ...] | None = None,
    identity_faces: tuple[bytes, ...] | None = None,
    face_change_above: float = 0.0,
    gaze_offset: float = 0.11,
    detector: DetectorConfig | None = None,
) -> LocalFrame:
    """Describe every face of a JPEG/PNG frame; ImageError for bytes that are not one."""
    pixels = _decode(image, max_side=max_side)
    gray = np.zeros(pixels.shape[:2], dtype=np.uint8)  # filled around each face (_grey_face)
    models = _models()
    height, width = pixels.shape[:2]
    rectangles = find_faces(
        pixels, upsample=upsample, detection=detection, empty_before=previous_faces == ()
    )
    faces = []
    crops: list[Box] = []
    bounds = picture(pixels) if rectangles else (0, 0, width, height)
    for rectangle in rectangles:
        shape = models.landmarks68(pixels, rectangle)
        points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], dtype=float)
        box = _box(rectangle, width=width, height=height)
        crops.append(_landmark_box(points))
        raw = (
            int(rectangle.left()),
            int(rectangle.top()),
            int(rectangle.width()),
            int(rectangle.height()),
        )
        _grey_face(gray, pixels, box, points)
        pose = head_pose(points)
        ear = eye_aspect_ratio(points)
        eyes_open = ear >= EYES_OPEN_RATIO
        ratio = pupil_ratio(gray, points) if eyes_open else None
        quality = face_quality(gray, box, raw, points, bounds)
        faces.append(
            FaceDetail(
                box=box,
                yaw=pose.yaw,
                pitch=pose.pitch,
                roll=pose.roll,
                gaze=gaze_direction(ratio, gaze_offset),
                gaze_ratio=ratio,
                eyes_open=eyes_open,
                mouth_open=mouth_aspect_ratio(points) >= MOUTH_OPEN_RATIO,
                brightness=quality.brightness,
                sharpness=quality.sharpness,
                partial=quality.partial,
            )
        )
    boxes = tuple(f.box for f in faces)
    thumbs = tuple(
        face_thumbnail(pixels, crop) for _, crop in sorted(zip(boxes, crops, strict=True))
    )
    wanted = identity_wanted(
        Plan(
            identity=identity,
            previous_faces=previous_faces,
            identity_faces=identity_faces,
            face_change_above=face_change_above,
        ),
        boxes,
        thumbs,
    )
    embeddings: tuple[tuple[float, ...], ...] | None = None
    if wanted:
        embeddings = ()
        if rectangles:
            shapes = models.shapes()
            for rectangle in rectangles:
                shapes.append(models.shape_predictor(pixels, rectangle))
            descriptors = models.encoder.compute_face_descriptor(pixels, shapes, 1)
            embeddings = tuple(tuple(float(v) for v in d) for d in descriptors)
    objects = persons = None
    if detector is not None:
        found = detect_objects(pixels, detector)
        objects = tuple(o for o in found if o.label != "Person")
        persons = sum(1 for o in found if o.label == "Person")
    return LocalFrame(
        faces=tuple(faces),
        width=width,
        height=height,
        embeddings=embeddings,
        objects=objects,
        persons=persons,
        face_thumbs=thumbs,
    )


def _grey_face(gray: np.ndarray, pixels: np.ndarray, box: Box, points: np.ndarray) -> None:
    """Fill ``gray`` with the luma of ``pixels`` where one face's pupil position and quality
    read it: its box (clipped to the frame) and the rectangle around its landmarks.

    The same arithmetic as over the whole frame, so the same values where it is read; the
    whole frame cost ~4 ms of a ~50 ms frame (848x480) for the few thousand pixels read.
    The luma of every one of the 16.7 M colours is the same as ``(r * 0.299 + g * 0.587 +
    b * 0.114).astype(uint8)`` on the uint8 channels (products and sums in the same order).
    """
    height, width = gray.shape
    left, top = points.min(axis=0)
    right, bottom = points.max(axis=0)
    x0 = max(min(int(left), box[0]), 0)
    y0 = max(min(int(top), box[1]), 0)
    x1 = min(max(int(right) + 1, box[0] + box[2]), width)
    y1 = min(max(int(bottom) + 1, box[1] + box[3]), height)
    if x1 <= x0 or y1 <= y0:
        return
    # One contiguous float copy, then in place: ~4x faster than products of the strided
    # uint8 channels, and the same values.
    rgb = pixels[y0:y1, x0:x1].astype(np.float64)
    luma = rgb[..., 0] * 0.299
    luma += rgb[..., 1] * 0.587
    luma += rgb[..., 2] * 0.114
    gray[y0:y1, x0:x1] = luma.astype(np.uint8)


def _landmark_box(points: np.ndarray) -> Box:
    """The square around a face's 68 landmarks (brows to chin, jaw line to jaw line).

    The crop the schedule compares is placed by the landmarks, not by the detector's box:
    the HOG box jumps between its pyramid's levels (1.2x apart) on a face that has not
    moved, and a crop that jumps with it looks like another face.
    """
    left, top = points.min(axis=0)
    right, bottom = points.max(axis=0)
    side = max(right - left, bottom - top, 2.0)
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    return (round(centre_x - side / 2), round(centre_y - side / 2), int(side), int(side))

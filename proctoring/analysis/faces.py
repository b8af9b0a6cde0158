"""The CPU side of the local face engine: dlib face detection and 128-d embeddings.

Used in place of Rekognition when running locally. Every function is top-level
and takes and returns picklable values, to run in a process-pool worker. The
dlib models (HOG frontal face detector, 5-point shape predictor, ResNet face
encoder from ``face_recognition_models``) are loaded on first use, once per
process, never at import time; dlib itself (the ``local`` extra) is imported
then too, so the types and errors here import without it.

Two embeddings belong to the same person when :func:`face_distance` is below
0.6 (dlib's convention).

Errors::

    ProctoringError
     ├── ImageError          bytes that are not a usable JPEG/PNG image; ``reason``:
     │                       not_an_image, too_large
     └── RegistrationError   a registration photo that cannot be used; the message is for
                             the student; ``reason``: no_face, several_faces, not_an_image,
                             too_small, too_large; for camera frames also too_many_frames,
                             frames_mismatch (both engines raise the same, see
                             :func:`check_frame_count`, :func:`no_face_in_frames`,
                             :func:`frames_mismatch`)
"""

from __future__ import annotations

import functools
import importlib.util
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from PIL import Image, ImageOps

from proctoring.errors import ReasonError

__all__ = [
    "MAX_ENROLMENT_FRAMES",
    "MIN_FACE_PIXELS",
    "Face",
    "FrameFaces",
    "ImageError",
    "RegistrationError",
    "check_frame_count",
    "detect_faces",
    "enrolment_faces",
    "face_distance",
    "find_faces",
    "frames_mismatch",
    "no_face_in_frames",
    "registration_face",
    "warm_up",
]

MIN_FACE_PIXELS = 40
"""Smallest face side a registration photo may show, in pixels of the analysed image."""
MAX_ENROLMENT_FRAMES = 8
"""Camera frames enrolled per student at most (512 bytes each in the faces item)."""

# Below Pillow's own DecompressionBombWarning threshold (89 M pixels): refused from the header.
_MAX_IMAGE_PIXELS = 50_000_000
_IMAGE_FORMATS = ("JPEG", "PNG")
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
# Measured on short_hamilton_clip.mp4 (640x360): upsample=0 misses faces of 44-53 px that
# upsample=1 finds, so 1 is the default despite costing ~4x (72 ms against 17 ms a frame).
_DEFAULT_UPSAMPLE = 1

Detection = Literal["regions", "full"]
"""How :func:`find_faces` searches: ``full`` runs the HOG detector on the whole upsampled
frame; ``regions`` at native size first and upsampled only where a small face may be."""
WEAK_SCORE = -1.25
"""Native-size windows scoring from here up to 0 (dlib's threshold) are where a face too small
for the native pass may be (``python -m bench.detect_agreement``: the small faces of the eval
suite score -0.31 to -1.22 there)."""
WEAK_MAX_SIDE = 110
"""Only weak windows up to this side (the three smallest native levels: 73, 87, 105 px) can
hold a face the native pass misses (under ~75 px); larger weak windows are parts of faces or
bodies the native pass judged already."""
_REGION_MARGIN = 0.1
"""Each side of a weak window is widened by this fraction before the upsampled pass."""


class ImageError(ReasonError):
    """Bytes that are not a usable JPEG or PNG image. ``.reason`` is a short stable code."""


class RegistrationError(ReasonError):
    """The photo cannot be used for registration; the message is for the user."""


def check_frame_count(frames: Sequence[bytes]) -> None:
    """RegistrationError (``too_many_frames``) beyond :data:`MAX_ENROLMENT_FRAMES`."""
    if len(frames) > MAX_ENROLMENT_FRAMES:
        raise RegistrationError(
            f"{len(frames)} camera frames; at most {MAX_ENROLMENT_FRAMES}",
            reason="too_many_frames",
        )


def no_face_in_frames(count: int) -> RegistrationError:
    """The refusal when none of ``count`` camera frames shows one usable face."""
    return RegistrationError(
        f"none of the {count} camera frames shows exactly one face large enough; "
        "sit facing the camera, alone, in good light, and try again",
        reason="no_face",
    )


def frames_mismatch() -> RegistrationError:
    """The refusal when the camera frames' face is not the registration photo's."""
    return RegistrationError(
        "the face on the camera does not look like the registration photo; ask "
        "the proctor to check your identity, or register a recent photo",
        reason="frames_mismatch",
    )


@dataclass(frozen=True)
class Face:
    """One face found in an image."""

    box: tuple[int, int, int, int]
    """Left, top, width, height in pixels of the analysed image."""
    embedding: tuple[float, ...]
    """The 128-d dlib descriptor."""


@dataclass(frozen=True)
class FrameFaces:
    """The faces found in one image, and the size of the image they were found in."""

    faces: tuple[Face, ...]
    width: int
    height: int


def detect_faces(
    image: bytes, *, upsample: int = _DEFAULT_UPSAMPLE, max_side: int = 1024
) -> FrameFaces:
    """Find the faces of a JPEG/PNG and compute their embeddings.

    The image is turned upright by its EXIF orientation and downscaled so that its
    longer side is at most ``max_side``; faces are found with dlib's HOG detector
    (``upsample`` times upsampled: 1 finds faces down to ~40 px, 0 only from ~80 px)
    and described with the 5-point shape predictor and the ResNet encoder. Boxes and
    the returned width/height are in the coordinates of the downscaled image.

    Raises :class:`ImageError` for bytes that are not a usable JPEG or PNG.
    """
    pixels = _decode(image, max_side=max_side)
    models = _models()
    height, width = pixels.shape[:2]
    rectangles = models.detector(pixels, upsample)  # registration: the whole frame, always
    if not rectangles:
        return FrameFaces(faces=(), width=width, height=height)
    shapes = models.shapes()
    for rectangle in rectangles:
        shapes.append(models.shape_predictor(pixels, rectangle))
    descriptors = models.encoder.compute_face_descriptor(pixels, shapes, 1)
    faces = tuple(
        Face(
            box=_box(rectangle, width=width, height=height),
            embedding=tuple(float(value) for value in descriptor),
        )
        for rectangle, descriptor in zip(rectangles, descriptors, strict=True)
    )
    return FrameFaces(faces=faces, width=width, height=height)


def find_faces(
    pixels: np.ndarray,
    *,
    upsample: int = _DEFAULT_UPSAMPLE,
    detection: Detection = "full",
    detector: Any = None,
    empty_before: bool = False,
) -> list[Any]:
    """dlib rectangles of the faces of an RGB array: the HOG detector, ``upsample`` times.

    ``detection="full"`` is the detector on the whole frame upsampled (what finds faces
    down to ~40 px at ``upsample=1``, at ~4x the cost of native size). ``"regions"`` finds
    the same faces at about a third of the cost:

    1. the whole frame at native size, keeping windows down to :data:`WEAK_SCORE`;
    2. no face there (score >= 0): the full upsampled pass, exactly as ``"full"`` (an empty
       seat is decided on the same evidence as before);
    3. otherwise the native faces, plus what the upsampled pass finds in each weak window of
       at most :data:`WEAK_MAX_SIDE` px (widened by 10 %): the small face of a second,
       farther person, which the native pass scores weakly but does not miss altogether.

    ``bench.detect_agreement`` measures the faces the two find on the eval suite's frames
    and the shared scenes. ``detector`` (default dlib's frontal face detector) is for tests.

    ``empty_before``: the student's last analysed frame had no face (an empty seat). With
    ``"regions"`` the frame goes straight to the full upsampled pass: the native pass found
    nothing last time and most likely would again, and the full pass decides either way (an
    empty seat costs the full pass alone, ~70 ms at 640x360 instead of ~87; a student who
    came back is found by it, as by ``"full"``).
    """
    detector = detector if detector is not None else _models().detector
    if upsample == 0 or detection == "full" or empty_before:
        return list(detector(pixels, upsample))
    rectangles, scores, _ = detector.run(pixels, 0, WEAK_SCORE)
    found = [r for r, score in zip(rectangles, scores, strict=True) if score >= 0]
    if not found:
        return list(detector(pixels, upsample))
    height, width = pixels.shape[:2]
    for weak, score in zip(rectangles, scores, strict=True):
        if score >= 0 or max(weak.width(), weak.height()) > WEAK_MAX_SIDE:
            continue
        margin = int(weak.width() * _REGION_MARGIN)
        left, top = max(int(weak.left()) - margin, 0), max(int(weak.top()) - margin, 0)
        right = min(int(weak.right()) + 1 + margin, width)
        bottom = min(int(weak.bottom()) + 1 + margin, height)
        region = np.ascontiguousarray(pixels[top:bottom, left:right])
        for face in detector(region, upsample):
            placed = type(face)(
                face.left() + left, face.top() + top, face.right() + left, face.bottom() + top
            )
            if not any(_same_face(placed, known) for known in found):
                found.append(placed)
    return found


def _same_face(a: Any, b: Any) -> bool:
    """Two rectangles of one face: they share over half of the smaller one."""
    inter = a.intersect(b)
    if inter.is_empty():
        return False
    return bool(inter.area() > 0.5 * min(a.area(), b.area()))


def registration_face(photo: bytes, *, max_side: int = 1024) -> Face:
    """The one face of a registration photo, or :class:`RegistrationError`."""
    try:
        found = detect_faces(photo, max_side=max_side)
    except ImageError as exc:
        if exc.reason == "too_large":
            raise RegistrationError(
                f"the photo is too large ({exc}); upload a smaller one", reason="too_large"
            ) from exc
        raise RegistrationError(
            "the file is not a JPEG or PNG photo that can be read; take or upload a photo "
            "of yourself",
            reason="not_an_image",
        ) from exc
    if not found.faces:
        raise RegistrationError(
            "no face found in the photo; use a well-lit photo that shows your face from the front",
            reason="no_face",
        )
    if len(found.faces) > 1:
        raise RegistrationError(
            f"found {len(found.faces)} faces in the photo; it must show only the student",
            reason="several_faces",
        )
    face = found.faces[0]
    side = min(face.box[2], face.box[3])
    if side < MIN_FACE_PIXELS:
        raise RegistrationError(
            f"the face in the photo is too small ({side} px, at least {MIN_FACE_PIXELS} px "
            "needed); take the photo closer to your face",
            reason="too_small",
        )
    return face


def enrolment_faces(frames: Sequence[bytes], *, max_side: int = 1024) -> tuple[Face, ...]:
    """The student's face in each of several camera frames taken at exam start.

    A frame is kept when it shows exactly one face of at least :data:`MIN_FACE_PIXELS`;
    frames without a usable face (the student looked away, moved, or someone passed
    behind) are skipped, not refused. :class:`RegistrationError` (``no_face``) when none
    is usable; a frame that is not an image is refused (``not_an_image``).
    """
    kept = []
    for frame in frames:
        try:
            found = detect_faces(frame, max_side=max_side)
        except ImageError as exc:
            raise RegistrationError(
                "a camera frame is not a JPEG or PNG image that can be read",
                reason="not_an_image",
            ) from exc
        if len(found.faces) == 1 and min(found.faces[0].box[2:]) >= MIN_FACE_PIXELS:
            kept.append(found.faces[0])
    if not kept:
        raise no_face_in_frames(len(frames))
    return tuple(kept)


def face_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Euclidean distance between two embeddings (dlib convention: < 0.6 same person)."""
    if len(a) != len(b):
        raise ValueError(f"embeddings of different lengths: {len(a)} and {len(b)}")
    return math.dist(a, b)


def warm_up() -> None:
    """Load the models now: a process-pool initializer, so no request pays the ~0.4 s load.

    Does nothing where dlib (the ``local`` extra) is not installed, so a pool built with
    this initializer also works for frame extraction alone.
    """
    if importlib.util.find_spec("dlib") is not None:
        _models()


class _Models(NamedTuple):
    detector: Any
    shape_predictor: Any
    encoder: Any
    shapes: Any  # dlib.full_object_detections, the encoder's batch argument
    landmarks68: Any  # the 68-point predictor: pose, eyes, mouth


@functools.cache
def _models() -> _Models:
    """Load the dlib models once per process (~0.4 s).

    dlib is imported here, not at the top: it belongs to the ``local`` extra, and the
    errors and types of this module are used where it is not installed.
    """
    import dlib

    folder = _model_folder()
    return _Models(
        shapes=dlib.full_object_detections,
        detector=dlib.get_frontal_face_detector(),
        shape_predictor=dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat")),
        encoder=dlib.face_recognition_model_v1(
            str(folder / "dlib_face_recognition_resnet_model_v1.dat")
        ),
        landmarks68=dlib.shape_predictor(str(folder / "shape_predictor_68_face_landmarks.dat")),
    )


def _model_folder() -> Path:
    # The files of face_recognition_models' *_location() functions, found without importing
    # the package: its __init__ imports pkg_resources, deprecated and gone from setuptools.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "face_recognition_models is not installed; install the 'local' extra"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _decode(data: bytes, *, max_side: int) -> np.ndarray:
    """Decode a JPEG/PNG into an upright RGB array whose longer side is <= max_side."""
    if not data:
        raise ImageError("the image is empty (0 bytes)", reason="not_an_image")
    try:
        with Image.open(io.BytesIO(data), formats=_IMAGE_FORMATS) as image:
            if image.width * image.height > _MAX_IMAGE_PIXELS:  # from the header, not decoded
                raise ImageError(
                    f"the image is {image.width}x{image.height}, above the limit of "
                    f"{_MAX_IMAGE_PIXELS} pixels",
                    reason="too_large",
                )
            image.draft("RGB", (max_side, max_side))  # JPEG: decode at 1/2, 1/4, 1/8 scale
            # In place: a frame that is upright and RGB already (a camera frame) is not
            # copied twice more (exif_transpose and convert each copied it: ~1.4 ms at 848x480
            # where the copies' fresh pages fault in, the decode itself ~1.4 ms).
            ImageOps.exif_transpose(image, in_place=True)
            upright = image if image.mode == "RGB" else image.convert("RGB")
            if max(upright.size) > max_side:
                upright.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
            return np.asarray(upright)
    except _IMAGE_ERRORS as exc:
        raise ImageError(
            f"the {len(data)} bytes (starting {data[:8].hex()}) are not a readable JPEG or "
            f"PNG image: {type(exc).__name__}: {str(exc)[:200]}",
            reason="not_an_image",
        ) from exc


def _box(rectangle: Any, *, width: int, height: int) -> tuple[int, int, int, int]:
    """A dlib rectangle as (left, top, width, height), clipped to the image."""
    left = max(int(rectangle.left()), 0)
    top = max(int(rectangle.top()), 0)
    right = min(int(rectangle.right()) + 1, width)
    bottom = min(int(rectangle.bottom()) + 1, height)
    return (left, top, max(right - left, 0), max(bottom - top, 0))

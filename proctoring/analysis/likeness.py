"""Likeness: how alike two frames, and two faces, are - the schedule's measures of change.

- :func:`thumbnail` and :func:`frame_difference`: a 32x32 grey thumbnail of a frame and
  the largest difference of any 4x4 cell of two of them (grey levels): "nearly the same
  frame", for the schedule's repeats.
- :func:`face_thumbnail` and :func:`face_difference`: a face's crop, blind to a change
  of light, and how different two crops are, 1.0 = the two most alike strangers of the
  development half of ``../shared/data`` (``python -m bench.face_change``): "someone
  else in the same place", for the identity re-check (:data:`FACE_CHANGE_ABOVE`).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = [
    "FACE_CHANGE_ABOVE",
    "face_difference",
    "face_thumbnail",
    "faces_content_changed",
    "frame_difference",
    "thumbnail",
]

Box = tuple[int, int, int, int]
_THUMB = 32
_FACE_THUMB = 12
_COLOUR_BINS = (12, 8)
_FACE_BYTES = _FACE_THUMB**2 + 2 * _COLOUR_BINS[0] * _COLOUR_BINS[1]
_FACE_MARGIN = 0.3
"""The face crop is the face's box (the square around its landmarks, see
``describe._landmark_box``) grown by this share of its side on each side: hair, the jaw
line and the collar belong to who sits there (0.3 separated people best of 0, 0.15 and 0.3
on the development half)."""
_LAYOUT_SCALE = 19.1
_COLOUR_SCALE = 0.42
FACE_CHANGE_ABOVE = 0.92


def thumbnail(jpeg: bytes) -> bytes:
    """A 32x32 grey thumbnail of a JPEG frame (1 KB), for :func:`frame_difference`."""
    with Image.open(io.BytesIO(jpeg)) as image:
        image.draft("L", (_THUMB * 4, _THUMB * 4))  # JPEG: decode at a fraction of the size
        small = image.convert("L").resize((_THUMB, _THUMB), Image.Resampling.BOX)
    return small.tobytes()


def frame_difference(a: bytes, b: bytes) -> float:
    """The largest mean absolute difference of any 4x4 cell of two thumbnails (grey levels).

    Local, not global: eyes turning while the head stays still change a few thumbnail
    pixels, which a mean over the whole frame dilutes below the noise of a hand-held
    phone (0.65 grey levels for the look back in ``center_left_center.mp4``) but which
    stand out in their cell (4.3).
    """
    first = np.frombuffer(a, dtype=np.uint8).astype(np.int16)
    second = np.frombuffer(b, dtype=np.uint8).astype(np.int16)
    if first.shape != second.shape or first.size != _THUMB * _THUMB:
        return 255.0
    cells = np.abs(first - second).reshape(_THUMB // 4, 4, _THUMB // 4, 4).mean(axis=(1, 3))
    return float(cells.max())


def face_thumbnail(pixels: np.ndarray, box: Box) -> bytes:
    """What :func:`face_difference` compares of one face of an RGB image (336 bytes).

    The face's box grown by ``_FACE_MARGIN`` a side (clipped to the image) gives
    two views, both blind to a change of light: a 12x12 grey crop stretched to mean 128
    and standard deviation 40 grey levels (the face's layout: features, glasses, hair
    line), and a hue x saturation histogram, 12 x 8 bins, brightness left out (skin, hair
    and clothes colour).
    """
    height, width = pixels.shape[:2]
    left, top, w, h = box
    grow_x, grow_y = int(w * _FACE_MARGIN), int(h * _FACE_MARGIN)
    x0, y0 = max(left - grow_x, 0), max(top - grow_y, 0)
    x1, y1 = min(left + w + grow_x, width), min(top + h + grow_y, height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return bytes(_FACE_BYTES)
    crop = Image.fromarray(np.ascontiguousarray(pixels[y0:y1, x0:x1, :3]).astype(np.uint8))
    grey = np.asarray(
        crop.convert("L").resize((_FACE_THUMB, _FACE_THUMB), Image.Resampling.BOX),
        dtype=np.float32,
    )
    spread = float(grey.std()) or 1.0
    layout = np.clip(128.0 + 40.0 * (grey - float(grey.mean())) / spread, 0, 255)
    hsv = np.asarray(crop.resize((32, 32), Image.Resampling.BOX).convert("HSV"))
    counts, _, _ = np.histogram2d(
        hsv[..., 0].ravel(), hsv[..., 1].ravel(), bins=_COLOUR_BINS, range=((0, 256), (0, 256))
    )
    colour = (counts.ravel() / max(float(counts.sum()), 1.0)).astype("<f2")
    return layout.round().astype(np.uint8).tobytes() + colour.tobytes()


def _face_parts(thumb: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    if len(thumb) != _FACE_BYTES:
        return None
    layout = np.frombuffer(thumb[: _FACE_THUMB**2], dtype=np.uint8).astype(np.float32)
    colour = np.frombuffer(thumb[_FACE_THUMB**2 :], dtype="<f2").astype(np.float32)
    return layout, colour


def face_difference(a: bytes, b: bytes) -> float:
    """How different two :func:`face_thumbnail` views are, 1.0 = the two most alike strangers.

    The mean of the layout's mean absolute grey difference over ``_LAYOUT_SCALE`` and the
    colour histograms' L1 distance over ``_COLOUR_SCALE``: each scale is the smallest
    difference between two different people of the development half of
    ``../shared/data`` (``python -m bench.face_change``), so one unit is "as different as
    the two most alike strangers measured".
    """
    first, second = _face_parts(a), _face_parts(b)
    if first is None or second is None:
        return 255.0
    layout = float(np.abs(first[0] - second[0]).mean()) / _LAYOUT_SCALE
    colour = float(np.abs(first[1] - second[1]).sum()) / _COLOUR_SCALE
    return round((layout + colour) / 2, 4)


def faces_content_changed(
    previous: tuple[bytes, ...] | None, current: tuple[bytes, ...] | None, above: float
) -> bool:
    """True when a face's crop differs from the one at the last identity check.

    Unknown crops (either None) count as changed: a check is never skipped on a signal
    that is not there. Faces are compared in box order; another count is a change.
    """
    if previous is None or current is None or len(previous) != len(current):
        return True
    return any(face_difference(a, b) > above for a, b in zip(previous, current, strict=True))

"""How clear a face is: brightness, sharpness and whether it is cut by the picture.

Both scores are on Rekognition's ``Quality`` scale (0-100) so one policy
threshold serves both engines:

- ``brightness``: the mean luminance of the face box, 0 black .. 100 white;
- ``sharpness``: the variance of the Laplacian of the face resized to 96 px,
  mapped through ``100 * v / (v + 100)`` (50 at a variance of 100);
- ``partial``: the detected box or the landmarks reach beyond the frame (as
  Rekognition's box does), or more than :data:`CUT_SHARE` of the face's area lies
  beyond the *picture* (:func:`cut_share`): the frame without its black bars, where a
  photo or a narrower camera is letterboxed or pillarboxed and the face runs off it.

The face's area is its outline (the jaw line and the brows, 27 of the 68 landmarks)
and that outline mirrored across the nose line, each side foreshortened by the other
eye's width when the head is turned: a face half out of the picture still shows its
other half, which says how far the hidden one reaches. So the decision is a share of
pixels, not of a few landmarks, and a dark background is no letterbox (it is part of
the picture: a turned face against it is whole).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["CUT_SHARE", "FaceQuality", "Picture", "cut_share", "face_quality", "picture"]

_SIDE = 96
_EDGE = 2  # pixels: a landmark this close to the border counts as cut off
CUT_SHARE = 0.09
"""Share of the face's area (:func:`cut_share`) beyond the picture above which the face
counts as cut: halfway between the most of any face of the development half (0.047, 798
faces, both detections, first and middle frames) and the least of the face half out of the
picture (0.131-0.145 as a camera frame, with either detection, first or middle frame).
Every whole face of shared/data reads at most 0.071 (``python -m bench.cut_faces``)."""
_BAR_BLACK = 4
"""A bar starts at the frame's border with a line (row or column) no brighter than this
(every channel): a letterbox is black, a dark room is not that dark all the way along."""
_BAR_LEVEL = 12
"""... and runs inwards while the lines stay at most this bright: the codecs' ringing
beside the picture's edge (up to ~12 within 8 px of it in the rendered camera frames),
below the darkest backgrounds of shared/data's photos (15-19)."""
_GRID = 128
"""Cells across the face's area at most when its pixels are counted (a 250 px face at half
resolution: the share moves by well under 0.01)."""
_OUTLINE = (*range(17), *range(26, 16, -1))  # jaw line left to right, brows right to left
_MIDLINE = (27, 28, 29, 30, 33, 51, 62, 66, 57, 8)  # nose bridge to chin
_EYES = ((36, 39), (42, 45))  # outer and inner corner of the image-left and image-right eye

Picture = tuple[int, int, int, int]
"""Left, top, right, bottom (exclusive) of the picture inside a frame, in pixels."""


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
    picture: Picture | None = None,
) -> FaceQuality:
    """Quality of one face; ``box`` is clipped to the image, ``raw_box`` is as detected,
    ``picture`` the frame without black bars (:func:`picture`; default the whole frame)."""
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
            or cut_share(points, picture or (0, 0, width, height)) > CUT_SHARE
        )
    return FaceQuality(round(brightness, 1), round(sharpness, 1), partial)


def picture(pixels: np.ndarray) -> Picture:
    """Where the picture is in an RGB frame: the frame without the black bars at its sides.

    A bar is a run of lines (columns at the left and right, rows at the top and bottom)
    from the frame's border inwards, the outermost no brighter than :data:`_BAR_BLACK` in
    every channel and each at most :data:`_BAR_LEVEL`. A frame without bars costs four
    line reads; one with bars two reductions of the frame (~0.1 ms at 848x480).
    """
    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        return (0, 0, 0, 0)
    flat = pixels.reshape(height, -1)  # rows of width*3 values: the fast axis to reduce
    sides = [0, 0, 0, 0]
    if min(int(flat[:, :3].max()), int(flat[:, -3:].max())) <= _BAR_BLACK:
        columns = flat.max(axis=0).reshape(width, -1).max(axis=1)
        sides[0], sides[2] = _bar(columns), _bar(columns[::-1])
    if min(int(flat[0].max()), int(flat[-1].max())) <= _BAR_BLACK:
        rows = flat.max(axis=1)
        sides[1], sides[3] = _bar(rows), _bar(rows[::-1])
    return (sides[0], sides[1], width - sides[2], height - sides[3])


def _bar(lines: np.ndarray) -> int:
    """Width of the bar at the start of ``lines`` (each line's brightest value)."""
    if lines[0] > _BAR_BLACK:
        return 0
    lit = np.flatnonzero(lines > _BAR_LEVEL)
    return int(lit[0]) if lit.size else len(lines)


def cut_share(points: np.ndarray, bounds: Picture) -> float:
    """Share of a face's area beyond ``bounds``: 0 inside, 1 all outside.

    The area is the outline of the 68 ``points`` (jaw line and brows) together with the
    outline mirrored across the nose line (fitted to the ten midline landmarks). A point
    mirrored to the other side lands at its distance from the line times the ratio of the
    eyes' widths there and here, at most 1: a turned head's far half is narrower, and the
    near half is not predicted wider than the far half shows. Counted in pixels (at most
    :data:`_GRID` across).
    """
    points = np.asarray(points, dtype=float)
    outline = points[list(_OUTLINE)]
    midline = points[list(_MIDLINE)]
    centre = midline.mean(axis=0)
    direction = np.linalg.svd(midline - centre)[2][0]
    normal = np.array([-direction[1], direction[0]])
    widths = [float(np.linalg.norm(points[a] - points[b])) for a, b in _EYES]
    left_side = np.sign((points[_EYES[0][0]] - centre) @ normal) or 1.0
    across = (outline - centre) @ normal
    along = (outline - centre) @ direction
    here_left = np.sign(across) == left_side
    ratio = np.where(here_left, widths[1] / max(widths[0], 1.0), widths[0] / max(widths[1], 1.0))
    mirrored = (
        centre + np.outer(along, direction) - np.outer(across * np.minimum(ratio, 1.0), normal)
    )
    both = np.vstack([outline, mirrored])
    origin = np.floor(both.min(axis=0))
    scale = min(1.0, _GRID / max(float(np.ptp(both, axis=0).max()), 1.0))
    cells = np.ceil(np.ptp(both, axis=0) * scale).astype(int) + 1
    mask = Image.new("L", (int(cells[0]), int(cells[1])), 0)
    draw = ImageDraw.Draw(mask)
    for polygon in (outline, mirrored):
        draw.polygon([tuple(xy) for xy in ((polygon - origin) * scale).tolist()], fill=1)
    area = np.asarray(mask)
    total = np.count_nonzero(area)
    if total == 0:
        return 0.0
    left, top, right, bottom = (
        max(round((v - o) * scale), 0) for v, o in zip(bounds, (*origin, *origin), strict=True)
    )
    return 1.0 - np.count_nonzero(area[top:bottom, left:right]) / total

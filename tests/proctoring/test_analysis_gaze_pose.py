"""Head pose, gaze, eyes and quality on real frames: the man turns his eyes, not his head."""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from proctoring.analysis.describe import LocalFrame, describe_frame
from proctoring.analysis.gaze import gaze_direction
from proctoring.frames import extract_frame
from producer.chunking import chunk_recording
from tests.conftest import DATA, needs_data

pytestmark = needs_data
pytest.importorskip("dlib", reason="dlib (the 'local' extra) is not installed")


@functools.cache
def _middle_frames(name: str) -> tuple[bytes, ...]:
    chunks = list(chunk_recording(DATA / "video" / name))
    return tuple(extract_frame(c.data, position="middle").jpeg for c in chunks[:3])


@functools.cache
def _describe(jpeg: bytes) -> LocalFrame:
    return describe_frame(jpeg, identity="no")


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("video", "middle"),
    [("center_left_center.mp4", "left"), ("center_right_center.mp4", "right")],
)
def test_eyes_turn_while_the_head_stays_still(video: str, middle: str) -> None:
    faces = [_describe(jpeg).faces for jpeg in _middle_frames(video)]
    assert [len(f) for f in faces] == [1, 1, 1]
    details = [f[0] for f in faces]
    # The head barely moves: the weak-perspective estimate reads at most 4.3° here.
    assert all(d.yaw is not None and abs(d.yaw) < 5 for d in details), "the head turned"
    assert [d.gaze for d in details] == ["center", middle, "center"]
    ratio = details[1].gaze_ratio
    assert ratio is not None
    assert (ratio < 0.36) if middle == "left" else (ratio > 0.65)
    assert all(d.eyes_open for d in details)


def test_the_first_frame_of_the_middle_chunk_misses_the_glance() -> None:
    """Why the middle frame is analysed: the look starts ~0.4 s into the middle chunk."""
    chunks = list(chunk_recording(DATA / "video" / "center_left_center.mp4"))
    first = extract_frame(chunks[1].data, position="first")
    assert _describe(first.jpeg).faces[0].gaze == "center"


def test_a_mirrored_face_turns_the_other_way() -> None:
    photo = Image.open(DATA / "faces" / "obama2.jpg").convert("RGB")
    turned = _describe(_jpeg(photo)).faces[0]
    mirrored = _describe(_jpeg(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT))).faces[0]
    assert turned.yaw is not None and mirrored.yaw is not None
    assert turned.yaw < -15 < 15 < mirrored.yaw
    assert (turned.gaze, mirrored.gaze) == ("left", "right")


def test_dark_blurred_and_cut_faces_are_not_clear_and_a_good_one_is() -> None:
    photo = Image.open(DATA / "faces" / "obama.jpg").convert("RGB")
    good = _describe(_jpeg(photo)).faces[0]
    dark = _describe(_jpeg(ImageEnhance.Brightness(photo).enhance(0.2))).faces[0]
    blurred = _describe(_jpeg(photo.filter(ImageFilter.GaussianBlur(6)))).faces[0]
    cut = _describe((DATA / "faces" / "obama_partial_face.jpg").read_bytes()).faces[0]
    assert good.brightness is not None and good.brightness > 40
    assert good.sharpness is not None and good.sharpness > 60
    assert not good.partial
    assert dark.brightness is not None and dark.brightness < 20
    assert blurred.sharpness is not None and blurred.sharpness < 20
    assert cut.partial


def test_gaze_direction_band() -> None:
    assert gaze_direction(0.5, 0.11) == "center"
    assert gaze_direction(0.32, 0.11) == "left"
    assert gaze_direction(0.69, 0.11) == "right"
    assert gaze_direction(None, 0.11) is None


def test_the_grey_image_around_the_faces_gives_what_the_whole_frame_gave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pupil position and quality read the grey image near each face only, so only there is
    it computed (~4 ms of a ~50 ms frame): every figure the same as with the whole frame, on
    the phone recordings, the stage clip (a face cut by the frame at times) and a photo of
    several people."""
    from proctoring.analysis import describe

    frames = [j for name in ("center_left_center.mp4", "short_hamilton_clip.mp4")
              for j in _middle_frames(name)]  # fmt: skip
    frames.append((DATA / "faces" / "lin-manuel-miranda.png").read_bytes())
    frames.append((DATA / "scenes" / "human" / "stock-group-1.jpg").read_bytes())
    lazy = [describe_frame(f, identity="no", detection="regions") for f in frames]

    around_faces = describe._grey_face

    def whole(gray: Any, pixels: Any, box: Any, points: Any) -> None:
        height, width = gray.shape
        around_faces(gray, pixels, (0, 0, width, height), points)

    monkeypatch.setattr(describe, "_grey_face", whole)
    assert sum(len(f.faces) for f in lazy) >= 6
    assert [describe_frame(f, identity="no", detection="regions") for f in frames] == lazy


def test_the_grey_image_is_the_luma_the_whole_frame_had() -> None:
    """The faster arithmetic (one float copy, sums in place) gives the same grey levels as
    the products of the uint8 channels did, on a real frame and on every red-green plane."""
    from proctoring.analysis.describe import _grey_face
    from proctoring.analysis.faces import _decode

    planes = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1)
    frames = [_decode((DATA / "faces" / "obama.jpg").read_bytes(), max_side=1024)]
    frames += [np.dstack([planes, np.full((256, 256), b)]).astype(np.uint8) for b in (0, 77, 255)]
    for pixels in frames:
        height, width = pixels.shape[:2]
        gray = np.zeros((height, width), dtype=np.uint8)
        corners = np.array([[0.0, 0.0], [width - 1.0, height - 1.0]])
        _grey_face(gray, pixels, (0, 0, width, height), corners)
        before = pixels[..., 0] * 0.299 + pixels[..., 1] * 0.587 + pixels[..., 2] * 0.114
        assert (gray == before.astype(np.uint8)).all()

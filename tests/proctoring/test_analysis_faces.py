"""The local face engine's CPU side on real photos and a real video frame."""

from __future__ import annotations

import functools
import io
import pickle
import random
from collections.abc import Callable

import av
import pytest
from PIL import Image

from proctoring.analysis import (
    Face,
    FrameFaces,
    ImageError,
    RegistrationError,
    detect_faces,
    face_distance,
    registration_face,
)
from proctoring.analysis.faces import enrolment_faces
from proctoring.errors import ProctoringError
from tests.conftest import DATA, needs_data

FACES = DATA / "faces"

pytestmark = needs_data
pytest.importorskip("dlib", reason="dlib (the 'local' extra) is not installed")


@functools.cache
def _found(name: str) -> FrameFaces:
    return detect_faces((FACES / name).read_bytes())


def _jpeg(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def _hamilton_frame_at(seconds: float) -> bytes:
    """A frame of short_hamilton_clip.mp4, as the pipeline would hand it over (JPEG)."""
    with av.open(DATA / "video" / "short_hamilton_clip.mp4") as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= seconds:
                return _jpeg(frame.to_image(), quality=85)
    raise AssertionError(f"the clip is shorter than {seconds} s")


@pytest.mark.parametrize(
    ("photo", "count"),
    [("obama.jpg", 1), ("two_people.jpg", 2), ("obama_and_biden.jpg", 3)],
)
def test_every_face_of_a_photo_is_found(photo: str, count: int) -> None:
    found = _found(photo)

    assert len(found.faces) == count
    for face in found.faces:
        left, top, width, height = face.box
        assert left >= 0 and left + width <= found.width
        assert top >= 0 and top + height <= found.height
        assert width >= 40 and height >= 40
        assert len(face.embedding) == 128


def test_large_photos_are_analysed_downscaled() -> None:
    with Image.open(FACES / "obama.jpg") as image:
        original = image.size
    full = _found("obama.jpg")
    small = detect_faces((FACES / "obama.jpg").read_bytes(), max_side=512)

    assert max(original) > 1024
    assert max(full.width, full.height) == 1024
    assert max(small.width, small.height) == 512
    assert len(small.faces) == 1
    assert small.faces[0].box[2] < full.faces[0].box[2]


def test_same_person_is_close_and_another_is_far() -> None:
    obama = _found("obama.jpg").faces[0].embedding

    assert face_distance(obama, _found("obama2.jpg").faces[0].embedding) < 0.6
    assert face_distance(obama, _found("biden.jpg").faces[0].embedding) > 0.6


def test_registered_portrait_matches_a_video_frame_of_the_same_person() -> None:
    registered = registration_face((FACES / "lin-manuel-miranda.png").read_bytes())
    frame = detect_faces(_hamilton_frame_at(6.0))

    assert (frame.width, frame.height) == (640, 360)
    assert len(frame.faces) >= 1
    assert min(face_distance(registered.embedding, f.embedding) for f in frame.faces) < 0.6


def test_phone_photo_is_turned_upright_by_its_exif_orientation() -> None:
    with Image.open(FACES / "obama.jpg") as image:
        sideways = image.transpose(Image.Transpose.ROTATE_90)
    orientation = Image.Exif()
    orientation[0x0112] = 6  # "rotate 90 degrees clockwise to display"

    assert detect_faces(_jpeg(sideways)).faces == ()
    upright = detect_faces(_jpeg(sideways, exif=orientation))
    assert len(upright.faces) == 1
    assert upright.height > upright.width


def test_registration_takes_the_one_face() -> None:
    face = registration_face((FACES / "obama.jpg").read_bytes())

    assert face == _found("obama.jpg").faces[0]
    assert pickle.loads(pickle.dumps(face)) == face


def test_enrolment_keeps_the_frames_with_one_face_and_skips_the_others() -> None:
    blank = io.BytesIO()
    Image.new("RGB", (640, 480), "white").save(blank, "PNG")
    frames = [
        _hamilton_frame_at(1.0),
        blank.getvalue(),  # the student moved out of the picture: skipped
        (FACES / "two_people.jpg").read_bytes(),  # someone behind: skipped
        (FACES / "lin-manuel-miranda.png").read_bytes(),
    ]
    kept = enrolment_faces(frames)
    assert len(kept) == 2
    assert face_distance(kept[0].embedding, kept[1].embedding) < 0.6

    with pytest.raises(RegistrationError, match="none of the 2 camera frames") as caught:
        enrolment_faces([blank.getvalue(), (FACES / "two_people.jpg").read_bytes()])
    assert caught.value.reason == "no_face"
    with pytest.raises(RegistrationError) as refused:
        enrolment_faces([b"not an image"])
    assert refused.value.reason == "not_an_image"


def test_registration_refuses_several_people() -> None:
    with pytest.raises(
        RegistrationError, match="found 2 faces in the photo; it must show only"
    ) as caught:
        registration_face((FACES / "two_people.jpg").read_bytes())

    assert caught.value.reason == "several_faces"


def test_registration_refuses_a_photo_without_a_face() -> None:
    blank = io.BytesIO()
    Image.new("RGB", (640, 480), "white").save(blank, "PNG")

    with pytest.raises(RegistrationError, match="no face found in the photo") as caught:
        registration_face(blank.getvalue())

    assert caught.value.reason == "no_face"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(lambda: random.Random(0).randbytes(4096), id="random"),
        pytest.param(lambda: b"", id="empty"),
        # read when the test runs: a missing ../shared/data skips it, not the collection
        pytest.param(lambda: (FACES / "obama.jpg").read_bytes()[:5000], id="truncated-jpeg"),
    ],
)
def test_registration_refuses_what_is_not_an_image(data: Callable[[], bytes]) -> None:
    with pytest.raises(RegistrationError, match="not a JPEG or PNG photo") as caught:
        registration_face(data())

    assert caught.value.reason == "not_an_image"
    assert isinstance(caught.value.__cause__, ImageError)


def test_registration_refuses_a_face_too_small_to_compare() -> None:
    with pytest.raises(RegistrationError, match=r"too small \(\d+ px, at least 40") as caught:
        registration_face((FACES / "obama.jpg").read_bytes(), max_side=160)

    assert caught.value.reason == "too_small"


def test_errors_keep_their_reason_across_a_process_boundary() -> None:
    errors: tuple[RegistrationError | ImageError, ...] = (
        RegistrationError("no face found in the photo", reason="no_face"),
        ImageError("not an image", reason="not_an_image"),
    )
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert isinstance(copy, ProctoringError)
        assert isinstance(copy, RegistrationError | ImageError)
        assert (type(copy), str(copy), copy.reason) == (type(error), str(error), error.reason)


def test_face_distance_is_euclidean() -> None:
    assert face_distance([0.0, 3.0], [4.0, 0.0]) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="different lengths"):
        face_distance([0.0] * 128, [0.0] * 127)


def test_face_is_a_plain_value() -> None:
    face = Face(box=(1, 2, 3, 4), embedding=(0.5,) * 128)

    assert pickle.loads(pickle.dumps(face)) == face

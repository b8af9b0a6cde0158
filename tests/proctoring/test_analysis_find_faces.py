"""Face detection at native size first, upsampled only where a small face may be
(``faces.find_faces``, ``detection="regions"``), against the whole upsampled frame
(``"full"``): the same faces on real photos, and the costly full pass skipped when a
face is found."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from proctoring.analysis.faces import _decode, _models, find_faces
from tests.conftest import DATA, needs_data

pytestmark = needs_data
pytest.importorskip("dlib", reason="dlib (the 'local' extra) is not installed")


class CountingDetector:
    """dlib's detector, counting the pixels it scans upsampled (what the time goes to)."""

    def __init__(self) -> None:
        self.real = _models().detector
        self.upsampled: list[tuple[int, int]] = []
        self.native: list[tuple[int, int]] = []

    def __call__(self, pixels: np.ndarray, upsample: int) -> Any:
        (self.upsampled if upsample else self.native).append(pixels.shape[:2])
        return self.real(pixels, upsample)

    def run(self, pixels: np.ndarray, upsample: int, threshold: float) -> Any:
        (self.upsampled if upsample else self.native).append(pixels.shape[:2])
        return self.real.run(pixels, upsample, threshold)


def _pixels(path: str) -> np.ndarray:
    return _decode((DATA / path).read_bytes(), max_side=1024)


def _sides(rectangles: list[Any]) -> list[int]:
    return sorted(int(r.width()) for r in rectangles)


def _same_faces(a: list[Any], b: list[Any]) -> bool:
    """Every face of ``a`` has one of ``b`` over half of it, and the counts agree."""
    return len(a) == len(b) and all(
        any(x.intersect(y).area() > 0.5 * min(x.area(), y.area()) for y in b) for x in a
    )


def test_small_faces_beside_large_ones_are_found_in_the_upsampled_regions() -> None:
    # group-5: four faces large enough for the native pass, three of ~53 px it misses
    pixels = _pixels("scenes/human/group-5.jpg")
    full = find_faces(pixels, detection="full")
    native = find_faces(pixels, upsample=0)
    detector = CountingDetector()
    regions = find_faces(pixels, detection="regions", detector=detector)

    assert len(full) == 7 and len(native) == 4, "the photo shows what this test is about"
    assert _same_faces(regions, full), (_sides(regions), _sides(full))
    assert min(_sides(regions)) < 60, "the small faces are among them"
    assert pixels.shape[:2] not in detector.upsampled, "no upsampled pass over the frame"
    scanned = sum(h * w for h, w in detector.upsampled)
    assert 0 < scanned < 0.3 * pixels.shape[0] * pixels.shape[1], (
        "only small regions (a quarter of the frame here, with 29 weak windows) went "
        "through the upsampled pass"
    )


def test_a_large_face_is_found_without_the_upsampled_full_frame_pass() -> None:
    pixels = _pixels("faces/obama.jpg")
    detector = CountingDetector()
    regions = find_faces(pixels, detection="regions", detector=detector)
    full = find_faces(pixels, detection="full")

    assert _same_faces(regions, full) and len(regions) == 1
    assert detector.native == [pixels.shape[:2]], "one native pass over the frame"
    assert pixels.shape[:2] not in detector.upsampled, "no upsampled pass over the frame"
    ratio = regions[0].width() / full[0].width()
    assert 1 / 1.25 <= ratio <= 1.25, "the box keeps its scale (one pyramid level at most)"


def test_a_frame_without_a_face_at_native_size_gets_the_whole_upsampled_pass() -> None:
    # a face of ~53 px alone: nothing at native size, so the old pass decides, unchanged
    pixels = _pixels("objects/tf-examples/pose_image2.jpeg")
    detector = CountingDetector()
    regions = find_faces(pixels, detection="regions", detector=detector)

    assert pixels.shape[:2] in detector.upsampled
    assert _same_faces(regions, find_faces(pixels, detection="full")) and len(regions) == 1
    empty = np.full((480, 640, 3), (58, 56, 52), dtype=np.uint8)  # the scenarios' empty room
    assert find_faces(empty) == []


def test_after_an_empty_seat_the_frame_goes_straight_to_the_whole_upsampled_pass() -> None:
    # the last frame had no face: the native pass is skipped, and the full pass decides
    for path in ("objects/tf-examples/pose_image2.jpeg", "faces/obama.jpg"):
        pixels = _pixels(path)
        detector = CountingDetector()
        found = find_faces(pixels, detection="regions", detector=detector, empty_before=True)

        assert detector.native == [], "no native pass"
        assert detector.upsampled == [pixels.shape[:2]], "one upsampled pass over the frame"
        assert _same_faces(found, find_faces(pixels, detection="full")) and len(found) == 1
    empty = np.full((480, 640, 3), (58, 56, 52), dtype=np.uint8)
    assert find_faces(empty, detection="regions", empty_before=True) == []


def test_the_engine_skips_the_native_pass_only_after_a_frame_without_a_face(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from proctoring.analysis import describe

    passed: list[bool] = []

    def recording(pixels: np.ndarray, **options: Any) -> list[Any]:
        passed.append(options["empty_before"])
        return find_faces(pixels, **options)

    monkeypatch.setattr(describe, "find_faces", recording)
    jpeg = (DATA / "faces/obama.jpg").read_bytes()
    for previous in (None, ((10, 10, 80, 80),), ()):
        found = describe.describe_frame(
            jpeg, identity="no", detection="regions", previous_faces=previous
        )
        assert len(found.faces) == 1
    assert passed == [False, False, True]

"""Which frame of a chunk: the first keyframe or the middle one (the default of the consumer)."""

from __future__ import annotations

import pytest

from proctoring.frames import FrameError, extract_frame
from producer.chunking import chunk_recording
from tests.conftest import DATA, needs_data

pytestmark = needs_data


@pytest.mark.parametrize(
    ("video", "index", "middle"),
    [
        ("center_left_center.mp4", 1, 2.5),  # remuxed phone chunk, a keyframe every 1.25 s
        ("center_right_center.mp4", 1, 2.5),  # re-encoded, one keyframe
        ("short_hamilton_clip.mp4", 0, 2.5),
        ("center_left_center.mp4", 3, 0.17),  # the 0.33 s tail
    ],
)
def test_the_middle_frame_is_half_way_through_the_chunk(
    video: str, index: int, middle: float
) -> None:
    chunk = list(chunk_recording(DATA / "video" / video))[index]
    first = extract_frame(chunk.data)
    frame = extract_frame(chunk.data, position="middle")
    assert first.time == 0
    assert frame.time == pytest.approx(middle, abs=0.1)
    assert (frame.width, frame.height) == (first.width, first.height), "upright as well"
    assert frame.jpeg != first.jpeg


def test_bad_chunks_fail_the_same_way_in_the_middle() -> None:
    chunk = next(chunk_recording(DATA / "video" / "center_focus.mp4"))
    for tenths in (3, 8):  # the MP4's index comes last: a cut chunk does not open
        with pytest.raises(FrameError) as caught:
            extract_frame(chunk.data[: len(chunk.data) * tenths // 10], position="middle")
        assert caught.value.reason == "truncated"
    with pytest.raises(FrameError) as empty:
        extract_frame(b"", position="middle")
    assert empty.value.reason == "empty"

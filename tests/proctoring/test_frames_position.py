"""Which frame of a chunk: the first keyframe or the middle one (the default of the consumer)."""

from __future__ import annotations

import io

import av
import pytest

from proctoring.frames import NEAR_MIDDLE_SECONDS, FrameError, extract_frame, open_chunk
from producer.chunking import ChunkEncoder, chunk_recording
from tests.conftest import DATA, needs_data

pytestmark = needs_data


@pytest.mark.parametrize(
    ("video", "index", "middle", "decoded"),
    [
        ("center_left_center.mp4", 1, 2.5, 1),  # remuxed phone chunk, a keyframe every 1.25 s
        ("center_right_center.mp4", 1, 2.5, 1),  # re-encoded with a keyframe at the middle
        ("short_hamilton_clip.mp4", 0, 2.5, 1),
        ("short_hamilton_clip.mp4", 1, 2.09, 1),  # 4.17 s: its middle is earlier
    ],
)
def test_the_middle_frame_is_half_way_through_the_chunk(
    video: str, index: int, middle: float, decoded: int
) -> None:
    chunk = list(chunk_recording(DATA / "video" / video))[index]
    first = extract_frame(chunk.data)
    frame = extract_frame(chunk.data, position="middle")
    assert (first.time, first.decoded) == (0, 1)
    assert frame.time == pytest.approx(middle, abs=0.1)
    assert frame.decoded == decoded, "a keyframe at the middle is decoded alone"
    assert (frame.width, frame.height) == (first.width, first.height), "upright as well"
    assert frame.jpeg != first.jpeg


@pytest.mark.parametrize(
    ("video", "index"), [("center_left_center.mp4", 3), ("center_focus.mp4", 2)]
)
def test_a_short_last_chunk_gives_its_first_keyframe_decoded_alone(video: str, index: int) -> None:
    """A recording's last chunk (0.33 s, 0.5 s) starts within half a second of its middle:
    its keyframe stands for the middle, decoded alone (it took 5 and 7 frames decoding on
    from it to the exact middle)."""
    chunk = list(chunk_recording(DATA / "video" / video))[index]
    assert chunk.duration < 2 * NEAR_MIDDLE_SECONDS
    frame = extract_frame(chunk.data, position="middle")
    assert (frame.time, frame.decoded) == (0, 1)
    assert frame == extract_frame(chunk.data), "the first frame, upright"


def test_a_chunk_with_one_keyframe_is_decoded_up_to_its_middle() -> None:
    """Any recorder's chunk (a camera, the Chime pipeline): the same middle frame, decoded
    from the keyframe the chunk starts on, when there is none at the middle."""
    chunk = next(chunk_recording(DATA / "video" / "short_hamilton_clip.mp4"))
    with av.open(io.BytesIO(chunk.data)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate is not None and stream.time_base is not None
        encoder = ChunkEncoder(
            index=0,
            start=0,
            width=stream.width,
            height=stream.height,
            rate=stream.average_rate,
            time_base=stream.time_base,
        )
        for frame in container.decode(stream):
            assert frame.pts is not None
            encoder.add(frame, pts=frame.pts, duration=frame.duration or 1)
    one_keyframe = encoder.finish(chunk.duration)
    with av.open(io.BytesIO(one_keyframe.data)) as container:
        assert sum(p.is_keyframe for p in container.demux(video=0)) == 1
    ours = extract_frame(chunk.data, position="middle")
    theirs = extract_frame(one_keyframe.data, position="middle")
    assert theirs.time == pytest.approx(ours.time, abs=1e-3), "the same frame of the chunk"
    assert theirs.decoded == round(ours.time * 29.97) + 1, "every frame up to the middle"


def test_bad_chunks_fail_the_same_way_in_the_middle() -> None:
    chunk = next(chunk_recording(DATA / "video" / "center_focus.mp4"))
    for tenths in (3, 8):  # the MP4's index comes last: a cut chunk does not open
        with pytest.raises(FrameError) as caught:
            extract_frame(chunk.data[: len(chunk.data) * tenths // 10], position="middle")
        assert caught.value.reason == "truncated"
    with pytest.raises(FrameError) as empty:
        extract_frame(b"", position="middle")
    assert empty.value.reason == "empty"


def test_the_headers_alone_give_what_extraction_reads_of_the_streams() -> None:
    """``extract_frame`` opens a chunk without reading packets to probe its streams
    (a third of the cost of opening): every chunk of the recordings, and a WebM, gives the
    same sizes, rate, duration and time base as a full probe."""

    def streams(data: bytes, probe: bool) -> tuple[object, ...]:
        with open_chunk(data, decoders="h264,vp8", probe=probe) as container:
            stream = container.streams.video[0]
            codec = stream.codec_context
            return (
                codec.width,
                codec.height,
                stream.average_rate,
                stream.duration,
                stream.time_base,
                container.duration,
                stream.start_time,
            )

    webm = io.BytesIO()
    with av.open(webm, "w", format="webm") as out:
        stream = out.add_stream("libvpx", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for pts in range(30):
            frame = av.VideoFrame(320, 240, "yuv420p")
            frame.pts = pts
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    chunks = [c.data for v in sorted((DATA / "video").glob("*.mp4")) for c in chunk_recording(v)]
    for data in [*chunks, webm.getvalue()]:
        assert streams(data, probe=False) == streams(data, probe=True)

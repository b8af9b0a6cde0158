"""Frame extraction on real recordings cut into 5-second chunks at test time."""

from __future__ import annotations

import io
import itertools
import multiprocessing
import pickle
import random
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.frame import VideoFrame
from PIL import Image

from proctoring.analysis.likeness import frame_difference, thumbnail
from proctoring.errors import ProctoringError
from proctoring.frames import _TRANSPOSE, THUMB_SIDE, Frame, FrameError, _thumbnail, extract_frame
from producer.chunking import chunk_recording
from tests.conftest import DATA, needs_data

VIDEO = DATA / "video"

pytestmark = needs_data


def _remux(source: Path, target: Path, *, start: float, seconds: float, **options: str) -> bytes:
    """Copy the video packets of [start, start + seconds) into a chunk of its own.

    ``start`` must be a keyframe; timestamps are rebased to 0 like a recorder's chunk.
    The display matrix travels with the stream template.
    """
    with av.open(source) as src, av.open(target, "w", format="mp4", options=options) as out:
        video = src.streams.video[0]
        copy = out.add_stream_from_template(video)
        first_dts: int | None = None
        for packet in src.demux(video):
            if packet.pts is None or packet.dts is None or packet.time_base is None:
                continue
            time = float(packet.pts * packet.time_base)
            if not start - 1e-3 <= time < start + seconds - 1e-3:
                continue
            if first_dts is None:
                assert packet.is_keyframe, f"{source.name} has no keyframe at {start} s"
                first_dts = packet.dts
            packet.pts -= first_dts
            packet.dts -= first_dts
            packet.stream = copy
            out.mux(packet)
    return target.read_bytes()


def _reencode(source: Path, target: Path, *, start: float, seconds: float) -> bytes:
    """Re-encode [start, start + seconds) with libx264 (B-frames on), starting on a keyframe."""
    with av.open(source) as src, av.open(target, "w", format="mp4") as out:
        video = src.streams.video[0]
        stream = out.add_stream("libx264", rate=Fraction(30000, 1001))
        stream.width, stream.height = video.codec_context.width, video.codec_context.height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast"}
        for frame in src.decode(video):
            if frame.time is None or frame.time < start:
                continue
            if frame.time >= start + seconds:
                break
            image = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            out.mux(stream.encode(image))
        out.mux(stream.encode(None))
    return target.read_bytes()


def _encode(target: Path, frames: list[np.ndarray]) -> bytes:
    """A tiny libx264 MP4 of the given RGB frames."""
    with av.open(target, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for array in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        out.mux(stream.encode(None))
    return target.read_bytes()


def _silence(target: Path) -> bytes:
    """One second of AAC silence in an MP4: a valid container without video."""
    with av.open(target, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000, layout="mono")
        for pts in range(0, 48000, 1024):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 48000, pts
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return target.read_bytes()


def _first_packet_size(chunk: bytes) -> int:
    with av.open(io.BytesIO(chunk), "r") as container:
        packet = next(container.demux(video=0))
        return packet.size


@pytest.fixture(scope="module")
def chunks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chunks")


@pytest.fixture(scope="module")
def phone_chunk(chunks: Path) -> bytes:
    """center_focus.mp4 from its keyframe at 5.0 s: a phone chunk with a -90 display matrix."""
    return _remux(VIDEO / "center_focus.mp4", chunks / "phone.mp4", start=5.0, seconds=5.0)


@pytest.fixture(scope="module")
def hamilton_chunk(chunks: Path) -> bytes:
    """short_hamilton_clip.mp4 5-10 s re-encoded; its own keyframes are not on chunk bounds."""
    return _reencode(
        VIDEO / "short_hamilton_clip.mp4", chunks / "hamilton.mp4", start=5.0, seconds=5.0
    )


@pytest.fixture(scope="module")
def hamilton_frames(hamilton_chunk: bytes) -> list[np.ndarray]:
    """The first ten frames of the chunk, decoded the ordinary way."""
    frames: list[np.ndarray] = []
    with av.open(io.BytesIO(hamilton_chunk), "r") as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == 10:
                break
    return frames


def _pixels(frame: Frame) -> np.ndarray:
    with Image.open(io.BytesIO(frame.jpeg)) as image:
        assert image.format == "JPEG"
        assert image.size == (frame.width, frame.height)
        return np.asarray(image.convert("RGB"))


def test_phone_chunk_gives_an_upright_portrait_frame(phone_chunk: bytes) -> None:
    frame = extract_frame(phone_chunk)

    assert (frame.width, frame.height) == (480, 848)  # decoded 848x480, sideways
    assert frame.rotation == 270  # the -90 display matrix, as a counterclockwise turn
    assert frame.time == 0.0
    assert _pixels(frame).shape == (848, 480, 3)


def test_phone_chunk_face_is_found_only_once_turned_upright(phone_chunk: bytes) -> None:
    dlib = pytest.importorskip("dlib")
    detector = dlib.get_frontal_face_detector()
    upright = _pixels(extract_frame(phone_chunk))
    as_decoded = np.ascontiguousarray(np.rot90(upright, k=1))  # undo the 270 degree turn

    assert len(detector(upright, 0)) == 1
    assert len(detector(as_decoded, 0)) == 0


def test_hamilton_chunk_gives_its_first_frame_as_640x360_jpeg(
    hamilton_chunk: bytes, hamilton_frames: list[np.ndarray]
) -> None:
    frame = extract_frame(hamilton_chunk)

    assert (frame.width, frame.height, frame.rotation, frame.time) == (640, 360, 0, 0.0)
    pixels = _pixels(frame).astype(np.int16)
    first_error = np.abs(pixels - hamilton_frames[0]).mean()
    later_error = np.abs(pixels - hamilton_frames[9]).mean()
    assert first_error < 2.0  # JPEG noise only
    assert first_error < later_error / 2


def test_the_thumbnail_is_the_upright_frame_in_grey_and_compares_like_the_jpegs() -> None:
    """The schedule's thumbnail comes from the decoded frame, not from decoding the JPEG
    again: the same picture, turned upright, and the differences the schedule compares
    (similar below 3 grey levels) within a grey level of the JPEG thumbnails'."""
    frames = [
        extract_frame(chunk.data, position=position)
        for chunk in chunk_recording(VIDEO / "center_left_center.mp4")
        for position in ("first", "middle")
    ]
    for frame in frames:
        assert len(frame.thumb) == THUMB_SIDE * THUMB_SIDE
        assert frame_difference(frame.thumb, thumbnail(frame.jpeg)) < 5, "the same picture"
    grid = np.frombuffer(frames[0].thumb, dtype=np.uint8).reshape(THUMB_SIDE, THUMB_SIDE)
    for turns in (1, 2, 3):  # the phone's frame is turned upright (rotation 270)
        sideways = np.ascontiguousarray(np.rot90(grid, k=turns)).tobytes()
        assert frame_difference(sideways, thumbnail(frames[0].jpeg)) > 50
    for a, b in itertools.combinations(frames, 2):
        from_jpegs = frame_difference(thumbnail(a.jpeg), thumbnail(b.jpeg))
        assert frame_difference(a.thumb, b.thumb) == pytest.approx(from_jpegs, abs=1.0)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_the_thumbnail_turns_as_the_jpeg_does(turns: int) -> None:
    """Every display rotation, not only the phones' 270: the 32x32 grid is turned as Pillow
    turns the JPEG's image (a bright quarter and a gradient tell the four apart)."""
    height, width = 360, 640
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[: height // 2, : width // 2] = 250
    rgb[..., 1] = (np.arange(width) * 200 // width).astype(np.uint8)
    decoded = VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    image = Image.fromarray(rgb)
    if turns:
        image = image.transpose(_TRANSPOSE[turns])
    expected = image.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX)
    differences = [frame_difference(_thumbnail(decoded, k), expected.tobytes()) for k in range(4)]
    assert differences[turns] < 2
    assert sorted(differences)[1] > 50, "every other turn is far off"


def test_jpeg_quality_is_applied(hamilton_chunk: bytes) -> None:
    small = extract_frame(hamilton_chunk, jpeg_quality=30)
    large = extract_frame(hamilton_chunk, jpeg_quality=95)

    assert len(small.jpeg) < len(large.jpeg) / 2


def test_frame_and_error_cross_a_process_pool(hamilton_chunk: bytes) -> None:
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        frame = pool.submit(extract_frame, hamilton_chunk).result()
        failure = pool.submit(extract_frame, b"").exception()

    assert frame == extract_frame(hamilton_chunk)
    assert isinstance(failure, FrameError)
    assert failure.reason == "empty"


def test_frame_error_keeps_its_reason_when_pickled() -> None:
    error = pickle.loads(pickle.dumps(FrameError("the chunk is empty", reason="empty")))

    assert isinstance(error, FrameError)
    assert isinstance(error, ProctoringError)
    assert (str(error), error.reason) == ("the chunk is empty", "empty")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        pytest.param(random.Random(0).randbytes(4096), "not an MP4, WebM or MKV", id="random"),
        pytest.param(b"student,exam\nalice,db-101\n" * 40, "not an MP4, WebM or MKV", id="text"),
        pytest.param("faces/obama.jpg", "starting ffd8ff", id="jpeg"),
    ],
)
def test_what_is_not_a_video_is_refused(data: bytes | str, words: str) -> None:
    if isinstance(data, str):  # a file of ../shared/data, read when the test runs
        data = (DATA / data).read_bytes()
    with pytest.raises(FrameError, match=words) as caught:
        extract_frame(data)

    assert caught.value.reason == "not_video"
    assert isinstance(caught.value.__cause__, av.FFmpegError)


def test_empty_chunk_is_refused() -> None:
    with pytest.raises(FrameError, match=r"empty \(0 bytes\)") as caught:
        extract_frame(b"")

    assert caught.value.reason == "empty"


def test_chunk_cut_before_its_index_is_truncated(phone_chunk: bytes) -> None:
    # Our remux writes the index (moov) last, so the first 30% has none.
    with pytest.raises(FrameError, match=r"starts like an MP4 .* truncated or corrupt") as caught:
        extract_frame(phone_chunk[: len(phone_chunk) * 3 // 10])

    assert caught.value.reason == "truncated"


def test_chunk_with_index_but_no_frame_data_is_truncated(chunks: Path) -> None:
    faststart = _remux(
        VIDEO / "center_focus.mp4",
        chunks / "faststart.mp4",
        start=5.0,
        seconds=5.0,
        movflags="faststart",
    )
    assert faststart.index(b"moov") < faststart.index(b"mdat")
    cut = faststart[: faststart.index(b"mdat") + 100]  # the index, and 100 bytes of frames

    with pytest.raises(FrameError, match="MP4 chunk is truncated or corrupt: no intact") as caught:
        extract_frame(cut)

    assert caught.value.reason == "truncated"


def test_damaged_first_keyframe_gives_the_next_intact_one(phone_chunk: bytes) -> None:
    keyframe = _first_packet_size(phone_chunk)
    start = phone_chunk.index(b"mdat") + 4  # our remux: the first keyframe opens mdat
    assert keyframe > 30_000
    damaged = phone_chunk[: start + 1000] + bytes(29_000) + phone_chunk[start + 30_000 :]

    frame = extract_frame(damaged)

    assert frame.time == pytest.approx(1.25, abs=0.01)  # center_focus: a keyframe every 1.25 s
    assert (frame.width, frame.height) == (480, 848)


def test_audio_only_file_has_no_video_stream(chunks: Path) -> None:
    with pytest.raises(FrameError, match=r"no video stream \(streams: audio\)") as caught:
        extract_frame(_silence(chunks / "silence.mp4"))

    assert caught.value.reason == "no_video_stream"


def test_huge_frames_are_refused_before_decoding(chunks: Path) -> None:
    chunk = _encode(chunks / "huge.mp4", [np.zeros((1280, 1280, 3), np.uint8)] * 2)
    frames_start, frames_end = chunk.index(b"mdat") + 4, chunk.rindex(b"moov") - 4
    # Zero the frame data: decoding it would fail as "truncated", so "too_large" proves
    # the size was checked from the stream parameters alone.
    undecodable = chunk[:frames_start] + bytes(frames_end - frames_start) + chunk[frames_end:]
    with pytest.raises(FrameError) as decoded:
        extract_frame(undecodable)
    assert decoded.value.reason == "truncated"

    with pytest.raises(FrameError, match=r"1280x1280 .* above the limit of 1000000") as caught:
        extract_frame(undecodable, max_pixels=1000 * 1000)

    assert caught.value.reason == "too_large"
    assert extract_frame(chunk).width == 1280  # and the intact file decodes within the default


def test_chunk_longer_than_allowed_is_refused(phone_chunk: bytes) -> None:
    with pytest.raises(FrameError, match=r"lasts 5\.0 s, above the limit of 4 s") as caught:
        extract_frame(phone_chunk, max_seconds=4.0)

    assert caught.value.reason == "too_long"

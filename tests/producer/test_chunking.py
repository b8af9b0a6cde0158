"""producer/chunking.py on the real recordings in ../shared/data/video.

What a consumer of the chunks would notice: each chunk decodes alone and starts with a
keyframe, nothing is lost between chunks, phone chunks still carry their rotation, and a
recording without keyframes at the boundaries is re-encoded at its own size and frame rate.
"""

from __future__ import annotations

import functools
import io
import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from producer.chunking import (
    MIN_CHUNK_SECONDS,
    Chunk,
    ChunkingError,
    chunk_recording,
    recording_duration,
)
from tests.conftest import DATA, needs_data

pytestmark = needs_data
VIDEO = DATA / "video"
PHONE = ("center_focus.mp4", "center_left_center.mp4", "center_right_center.mp4")
ALL = (*PHONE, "short_hamilton_clip.mp4")


@dataclass(frozen=True)
class Source:
    duration: float
    frame: float  # one frame, seconds
    rate: Fraction


@dataclass(frozen=True)
class Decoded:
    frames: int
    first_is_keyframe: bool
    first_pts: int
    rotations: set[int]
    width: int
    height: int
    duration: float  # the container's own idea of it
    rate: Fraction | None
    streams: int
    upright_shape: tuple[int, ...]


@functools.cache
def source(name: str) -> Source:
    """Read independently of the code under test: every packet's timestamps."""
    with av.open(str(VIDEO / name)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.pts is not None and p.size]
        assert stream.time_base is not None and stream.average_rate is not None
        first = min(p.pts for p in packets if p.pts is not None)
        end = max(p.pts + (p.duration or 0) for p in packets if p.pts is not None)
        return Source(
            duration=float((end - first) * stream.time_base),
            frame=float(1 / stream.average_rate),
            rate=stream.average_rate,
        )


@functools.cache
def chunks(name: str, seconds: float = 5.0) -> tuple[Chunk, ...]:
    return tuple(chunk_recording(VIDEO / name, seconds=seconds))


def decode_alone(chunk: Chunk) -> Decoded:
    """Open the chunk's bytes on their own and decode every frame."""
    with av.open(io.BytesIO(chunk.data), "r") as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert frames, f"chunk {chunk.index} decoded to nothing"
        first = frames[0]
        upright = np.rot90(first.to_ndarray(format="rgb24"), k=round(first.rotation / 90) % 4)
        assert stream.duration is not None and stream.time_base is not None
        return Decoded(
            frames=len(frames),
            first_is_keyframe=first.key_frame,
            first_pts=first.pts or 0,
            rotations={frame.rotation for frame in frames},
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            duration=float(stream.duration * stream.time_base),
            rate=stream.average_rate,
            streams=len(container.streams),
            upright_shape=upright.shape,
        )


@pytest.mark.parametrize("name", ALL)
def test_every_chunk_decodes_alone_from_a_keyframe_at_time_zero(name: str) -> None:
    for chunk in chunks(name):
        decoded = decode_alone(chunk)
        assert decoded.first_is_keyframe, f"{name} chunk {chunk.index} does not start on a keyframe"
        assert decoded.first_pts == 0
        assert decoded.streams == 1, "audio is dropped"


@pytest.mark.parametrize("name", ALL)
def test_chunks_cover_the_recording_without_gaps(name: str) -> None:
    made = chunks(name)
    truth = source(name)
    assert [c.index for c in made] == list(range(len(made)))
    assert made[0].start == 0
    for before, after in itertools.pairwise(made):
        assert after.start == pytest.approx(before.start + before.duration, abs=1e-6)
    # Each chunk may be a frame off; a dropped tail (< MIN_CHUNK_SECONDS) is at most a frame here.
    total = sum(c.duration for c in made)
    assert total == pytest.approx(truth.duration, abs=truth.frame * len(made))
    for chunk in made:
        assert MIN_CHUNK_SECONDS <= chunk.duration <= 5.0 + truth.frame
        # What the file itself says matches what the Chunk says, within a frame.
        assert decode_alone(chunk).duration == pytest.approx(chunk.duration, abs=truth.frame)


def test_center_focus_is_remuxed_into_three_chunks_that_keep_the_rotation() -> None:
    made = chunks("center_focus.mp4")
    assert [c.remuxed for c in made] == [True, True, True]
    assert len(made) == 3  # 10.5 s
    assert [round(c.start, 2) for c in made] == [0.0, 5.0, 10.0]
    assert made[-1].duration == pytest.approx(0.5, abs=0.05)
    for chunk in made:
        decoded = decode_alone(chunk)
        assert decoded.rotations == {-90}, "every frame must still say it is turned"
        assert (decoded.width, decoded.height) == (848, 480)
        assert decoded.upright_shape == (848, 480, 3)  # portrait once turned upright
    # A remux copies packets: the chunks hold exactly the source's frames, bytes and all.
    assert sum(decode_alone(c).frames for c in made) == 252


def test_a_remux_copies_the_video_bytes() -> None:
    made = chunks("center_focus.mp4")
    size = (VIDEO / "center_focus.mp4").stat().st_size
    # No re-encoding: the chunks weigh what the video stream weighs (the audio is dropped).
    assert 0.8 * size < sum(len(c.data) for c in made) < size


def test_hamilton_has_no_keyframes_at_the_boundaries_so_it_is_reencoded() -> None:
    made = chunks("short_hamilton_clip.mp4")
    truth = source("short_hamilton_clip.mp4")
    assert len(made) == 2  # 9.2 s of video
    assert [c.remuxed for c in made] == [False, False]
    for chunk in made:
        decoded = decode_alone(chunk)
        assert (decoded.width, decoded.height) == (640, 360)
        assert decoded.rotations == {0}
        assert decoded.rate is not None
        assert float(decoded.rate) == pytest.approx(float(truth.rate), rel=1e-3)  # 29.97 kept
    assert sum(decode_alone(c).frames for c in made) == 275  # every frame, none doubled


def frame_times(chunk: Chunk) -> list[tuple[float, bool]]:
    """(seconds, is a keyframe) of every frame of the chunk, in time order."""
    with av.open(io.BytesIO(chunk.data), "r") as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        return sorted(
            (float(p.pts * stream.time_base), p.is_keyframe)
            for p in container.demux(stream)
            if p.pts is not None
        )


@pytest.mark.parametrize("name", ("short_hamilton_clip.mp4", "center_right_center.mp4"))
def test_a_reencoded_chunk_has_a_second_keyframe_at_its_middle(name: str) -> None:
    """Where the consumer takes its frame: decoding it is decoding one frame, not every
    frame from the chunk's start (docs/benchmarks.md)."""
    for chunk in chunks(name):
        assert not chunk.remuxed
        times = frame_times(chunk)
        keyframes = [i for i, (_, key) in enumerate(times) if key]
        assert len(keyframes) == 2 and keyframes[0] == 0
        # the first frame at or after half the chunk
        before, middle = times[keyframes[1] - 1][0], times[keyframes[1]][0]
        assert before < chunk.duration / 2 <= middle


def test_a_phone_recording_that_needs_reencoding_keeps_its_rotation() -> None:
    # center_right_center's keyframes drift off the 5 s grid (4.63 s, 9.63 s ...).
    made = chunks("center_right_center.mp4")
    assert len(made) == 3
    assert not any(c.remuxed for c in made)
    for chunk in made:
        decoded = decode_alone(chunk)
        assert decoded.rotations == {-90}
        assert decoded.upright_shape == (848, 480, 3)


def test_center_left_center_is_remuxed_into_four_chunks() -> None:
    made = chunks("center_left_center.mp4")  # 15.33 s: 5 + 5 + 5 + 0.33
    assert [c.remuxed for c in made] == [True] * 4
    assert made[-1].duration == pytest.approx(1 / 3, abs=0.05)


def test_shorter_chunks_follow_the_keyframes() -> None:
    # Keyframes every 1.25 s: 2.5 s chunks remux too.
    made = chunks("center_focus.mp4", seconds=2.5)
    assert len(made) == 5
    assert all(c.remuxed for c in made)
    assert [round(c.start, 2) for c in made] == [0.0, 2.5, 5.0, 7.5, 10.0]
    # 2 s chunks do not line up with 1.25 s keyframes: re-encoded, still upright-able.
    two = chunks("center_focus.mp4", seconds=2.0)
    assert len(two) == 6
    assert not any(c.remuxed for c in two)
    assert all(decode_alone(c).first_is_keyframe for c in two)


def test_recording_duration_is_the_video_streams() -> None:
    assert recording_duration(VIDEO / "center_focus.mp4") == pytest.approx(10.498, abs=0.01)
    assert recording_duration(VIDEO / "short_hamilton_clip.mp4") == pytest.approx(9.18, abs=0.01)


def test_a_missing_file_is_a_chunking_error(tmp_path: Path) -> None:
    with pytest.raises(ChunkingError, match=r"nothing\.mp4"):
        chunk_recording(tmp_path / "nothing.mp4")


def test_a_file_that_is_not_video_is_a_chunking_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all " * 100)
    with pytest.raises(ChunkingError, match=r"garbage\.mp4") as caught:
        chunk_recording(garbage)
    assert caught.value.__cause__ is not None


def test_a_still_photo_is_not_a_recording() -> None:
    with pytest.raises(ChunkingError, match="fewer than 2"):
        chunk_recording(DATA / "faces" / "obama.jpg")


def test_audio_only_is_a_chunking_error(tmp_path: Path) -> None:
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = np.zeros((1, 16000), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(ChunkingError, match="no video stream"):
        chunk_recording(sound)


def test_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        chunk_recording(VIDEO / "center_focus.mp4", seconds=0)

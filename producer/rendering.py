"""Scenarios rendered into self-contained chunks, and the frames they are drawn from.

A scenario that is exactly one whole video is cut by ``chunk_recording`` (so a phone's
rotation metadata travels as it would from a real phone); anything else is rendered frame
by frame onto one canvas (letterboxed, video made upright first) at a fixed frame rate and
encoded chunk by chunk with libx264. :func:`video_frames`, :func:`photo_pixels` and
:func:`paste` are also what the benchmarks draw their frames with.

Errors::

    ProctoringError
     ├── scenario.ScenarioError   a photo cannot be read while rendering
     └── chunking.ChunkingError   a video cannot be decoded while rendering
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageOps

from producer.chunking import (
    MIN_CHUNK_SECONDS,
    Chunk,
    ChunkEncoder,
    ChunkingError,
    chunk_recording,
    recording_duration,
)
from producer.scenario import (
    VIDEO_SUFFIXES,
    PhotoSegment,
    Scenario,
    ScenarioError,
    Segment,
    TogetherSegment,
    VideoSegment,
)

__all__ = ["paste", "photo_pixels", "render_chunks", "video_frames"]

_EMPTY_RGB = (58, 56, 52)
"""The empty room: a uniform, dim, slightly warm grey."""
_YUV_BLACK = ((0, 16), (1, 128), (1, 128))
"""(subsampling shift, black level) of the Y, U and V planes, limited range."""


def render_chunks(
    scenario: Scenario,
    *,
    seconds: float = 5.0,
    fps: int = 15,
    size: tuple[int, int] = (640, 480),
) -> Iterator[Chunk]:
    """Turn a scenario into self-contained chunks of ``seconds`` (the last may be shorter).

    One whole video is cut by ``chunk_recording`` and keeps its own size, frame rate and
    rotation. Anything else becomes ceil(total / seconds) chunks of ``size`` at ``fps``, each
    encoded by its own libx264 encoder so it starts with a keyframe, with a second one at its
    middle, the frame the consumer analyses (a trailing chunk shorter than
    ``MIN_CHUNK_SECONDS`` is dropped). Video durations are read here, so an unreadable
    video raises ``ChunkingError`` before the first chunk.
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    if fps < 1:
        raise ValueError(f"fps must be at least 1, got {fps!r}")
    width, height = size
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise ValueError(f"size must be two even numbers of at least 2, got {size!r}")
    if len(scenario.segments) == 1:
        only = scenario.segments[0]
        if isinstance(only, VideoSegment) and only.whole:
            return chunk_recording(only.video, seconds=seconds)
    counts = [_frame_count(segment, fps) for segment in scenario.segments]
    return _render(scenario, counts, seconds=seconds, fps=fps, size=size)


def _frame_count(segment: Segment, fps: int) -> int:
    if isinstance(segment, VideoSegment):
        if segment.seconds is not None:
            return round(segment.seconds * fps)
        return max(0, round((recording_duration(segment.video) - segment.start) * fps))
    return round(segment.seconds * fps)


def _render(
    scenario: Scenario,
    counts: list[int],
    *,
    seconds: float,
    fps: int,
    size: tuple[int, int],
) -> Iterator[Chunk]:
    total = sum(counts)
    step = seconds * fps
    bounds: list[int] = []
    while (bound := round((len(bounds) + 1) * step)) < total:
        bounds.append(bound)
    spans = [(s, e) for s, e in zip([0, *bounds], [*bounds, total], strict=True) if e > s]
    if len(spans) > 1 and (spans[-1][1] - spans[-1][0]) / fps < MIN_CHUNK_SECONDS:
        spans.pop()
    frames = _timeline(scenario.segments, counts, fps=fps, size=size)
    try:
        for index, (first, end) in enumerate(spans):
            encoder = ChunkEncoder(
                index=index,
                start=first / fps,
                width=size[0],
                height=size[1],
                rate=Fraction(fps),
                time_base=Fraction(1, fps),
                keyframe_at=-(-(end - first) // 2),  # the middle, where the consumer looks
            )
            for pts, frame in enumerate(itertools.islice(frames, end - first)):
                encoder.add(frame, pts=pts, duration=1)
            yield encoder.finish((end - first) / fps)
    finally:
        frames.close()


def _timeline(
    segments: list[Segment], counts: list[int], *, fps: int, size: tuple[int, int]
) -> Generator[VideoFrame, None, None]:
    """Exactly ``sum(counts)`` yuv420p canvas frames, segment after segment."""
    empty: VideoFrame | None = None
    for segment, count in zip(segments, counts, strict=True):
        if isinstance(segment, VideoSegment):
            yield from video_frames(segment, count, fps=fps, size=size)
        elif isinstance(segment, PhotoSegment):
            frame = _to_frame(paste(photo_pixels(segment.photo, size), size))
            yield from itertools.repeat(frame, count)
        elif isinstance(segment, TogetherSegment):
            yield from itertools.repeat(_to_frame(_side_by_side(segment.together, size)), count)
        else:
            if empty is None:
                canvas = np.empty((size[1], size[0], 3), dtype=np.uint8)
                canvas[:] = _EMPTY_RGB
                empty = _to_frame(canvas)
            yield from itertools.repeat(empty, count)


def video_frames(
    segment: VideoSegment, count: int, *, fps: int, size: tuple[int, int]
) -> Iterator[VideoFrame]:
    """``count`` canvas frames sampled at ``fps`` from ``segment``, each the latest source frame.

    Past the end of the recording the last frame holds.
    """
    if count == 0:
        return
    try:
        container = av.open(str(segment.video))
    except (av.FFmpegError, OSError) as exc:
        raise ChunkingError(f"{segment.video}: cannot open the recording: {exc}") from exc
    with container:
        if not container.streams.video:
            raise ChunkingError(f"{segment.video}: the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = stream.time_base or Fraction(1, 90000)
        first = stream.start_time or 0
        scaler = VideoReformatter()
        slot = 0
        latest: VideoFrame | None = None
        shown: VideoFrame | None = None
        try:
            if segment.start > 0:
                container.seek(first + int(segment.start / time_base), stream=stream)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                at = float((frame.pts - first) * time_base) - segment.start
                while latest is not None and slot < count and at > slot / fps + 1e-3:
                    if shown is None:
                        shown = _upright(latest, size, scaler)
                    yield shown
                    slot += 1
                if slot >= count:
                    return
                latest, shown = frame, None
        except av.FFmpegError as exc:
            raise ChunkingError(f"{segment.video}: cannot decode the recording: {exc}") from exc
        if latest is None:
            raise ChunkingError(f"{segment.video}: no frame to show from {segment.start:g} s")
        if shown is None:
            shown = _upright(latest, size, scaler)
        yield from itertools.repeat(shown, count - slot)


def _fit(width: int, height: int, size: tuple[int, int], *, even: bool = False) -> tuple[int, int]:
    """The largest size with the aspect of ``width`` x ``height`` that fits in ``size``."""
    scale = min(size[0] / width, size[1] / height)
    step = 2 if even else 1
    return (
        min(size[0], max(step, round(width * scale / step) * step)),
        min(size[1], max(step, round(height * scale / step) * step)),
    )


def _upright(frame: VideoFrame, size: tuple[int, int], scaler: VideoReformatter) -> VideoFrame:
    """The decoded frame turned upright by its display rotation, letterboxed on a canvas.

    Works on the yuv420p planes (one swscale pass to scale, numpy to turn and place), about
    three times faster than a round trip through RGB; ``scaler`` is reused across frames
    because setting up a swscale context costs ten times more than scaling one frame.
    """
    turns = round(frame.rotation / 90) % 4
    sideways = turns % 2 == 1
    width, height = (frame.height, frame.width) if sideways else (frame.width, frame.height)
    fit_w, fit_h = _fit(width, height, size, even=True)
    scaled_w, scaled_h = (fit_h, fit_w) if sideways else (fit_w, fit_h)
    scaled = scaler.reformat(frame, width=scaled_w, height=scaled_h, format="yuv420p")
    planes = _yuv_planes(scaled.to_ndarray(), scaled_w, scaled_h)
    canvas = [np.full((size[1] >> s, size[0] >> s), fill, np.uint8) for s, fill in _YUV_BLACK]
    top, left = (size[1] - fit_h) // 4, (size[0] - fit_w) // 4  # in chroma rows and columns
    for (shift, _), plane, target in zip(_YUV_BLACK, planes, canvas, strict=True):
        upright = np.rot90(plane, k=turns)
        rows, cols = upright.shape
        y, x = top << (1 - shift), left << (1 - shift)
        target[y : y + rows, x : x + cols] = upright
    packed = np.concatenate([plane.reshape(-1) for plane in canvas]).reshape(-1, size[0])
    return VideoFrame.from_ndarray(packed, format="yuv420p")


def _yuv_planes(packed: np.ndarray, width: int, height: int) -> list[np.ndarray]:
    """Y, U and V of a yuv420p frame from PyAV's packed ``to_ndarray`` layout."""
    flat = packed.reshape(-1)
    luma, chroma = width * height, (width // 2) * (height // 2)
    return [
        flat[:luma].reshape(height, width),
        flat[luma : luma + chroma].reshape(height // 2, width // 2),
        flat[luma + chroma : luma + 2 * chroma].reshape(height // 2, width // 2),
    ]


def photo_pixels(photo: Path, size: tuple[int, int]) -> np.ndarray:
    """The photo, turned by its EXIF orientation and scaled to fit ``size``, as RGB."""
    try:
        with Image.open(photo) as image:
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except OSError as exc:
        raise ScenarioError(f"{photo}: not a readable image: {exc}") from exc
    fitted = upright.resize(_fit(upright.width, upright.height, size), Image.Resampling.BILINEAR)
    return np.asarray(fitted, dtype=np.uint8)


def paste(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` centred on a black canvas of ``size`` (letterboxed or pillarboxed)."""
    canvas = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    height, width = image.shape[:2]
    top, left = (size[1] - height) // 2, (size[0] - width) // 2
    canvas[top : top + height, left : left + width] = image
    return canvas


def _side_by_side(parts: list[Path], size: tuple[int, int]) -> np.ndarray:
    """Each photo or recording's frame in its own column of the canvas."""
    width = size[0] // len(parts) // 2 * 2
    canvas = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    for i, part in enumerate(parts):
        if part.suffix.lower() in VIDEO_SUFFIXES:
            at = min(1.0, recording_duration(part) / 2)
            segment = VideoSegment(video=part, start=at)
            frame = next(video_frames(segment, 1, fps=1, size=(width, size[1])))
            pixels = frame.to_ndarray(format="rgb24")
        else:
            pixels = paste(photo_pixels(part, (width, size[1])), (width, size[1]))
        canvas[:, i * width : (i + 1) * width] = pixels
    return canvas


def _to_frame(canvas: np.ndarray) -> VideoFrame:
    return VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p")

"""Scenario files: one simulated student session, composed of videos, photos and empty frames.

A scenario is YAML or JSON with the same structure (full reference in ``docs/scenarios.md``)::

    student: impostor                  # optional; the uploader's --student wins
    register: faces/obama.jpg          # optional; the photo the student registers with
    segments:                          # played one after the other, at least one
      - video: video/center_focus.mp4  # a whole recording ...
      - video: video/short_hamilton_clip.mp4
        start: 2                       # ... or `seconds` of it from `start`
        seconds: 5
      - photo: faces/two_people.jpg    # a still photo held for `seconds`
        seconds: 10
      - empty: 5                       # seconds of an empty room (a uniform dim grey frame)
      - together: [faces/obama.jpg, talking/liveportrait/d19.mp4]
        seconds: 10                    # people side by side: photos, or a recording's frame

Relative paths resolve against the data directory given to ``load_scenario``; absolute paths
stay as they are. Every referenced file must exist and be readable when the scenario is
loaded, so a typo fails before anything is uploaded.

``render_chunks`` turns a scenario into self-contained chunks. A scenario that is exactly one
whole video is cut by ``chunk_recording`` (so a phone's rotation metadata travels as it would
from a real phone); anything else is rendered frame by frame onto one canvas (letterboxed,
video made upright first) at a fixed frame rate and encoded chunk by chunk with libx264.

Errors::

    ProctoringError
     ├── ScenarioError            the scenario file is missing, malformed or refers to a
     │                            missing or unreadable file; the message names the file and
     │                            the place, e.g. ``leaving.yaml: segments[1].seconds: ...``
     └── chunking.ChunkingError   a video cannot be decoded while rendering
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

import av
import numpy as np
import yaml
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError
from pydantic_core import ErrorDetails

from proctoring.errors import ProctoringError
from producer.chunking import (
    MIN_CHUNK_SECONDS,
    Chunk,
    ChunkEncoder,
    ChunkingError,
    chunk_recording,
    recording_duration,
)

__all__ = [
    "EmptySegment",
    "PhotoSegment",
    "Scenario",
    "ScenarioError",
    "Segment",
    "TogetherSegment",
    "VideoSegment",
    "load_scenario",
    "render_chunks",
    "scenario_for_recording",
    "scenario_from_mapping",
]

_EMPTY_RGB = (58, 56, 52)
"""The empty room: a uniform, dim, slightly warm grey."""
_YUV_BLACK = ((0, 16), (1, 128), (1, 128))
"""(subsampling shift, black level) of the Y, U and V planes, limited range."""
_END_TOLERANCE = 0.1
"""How far (seconds) a video segment may run past the end of its file; the last frame holds."""
_MAX_SECONDS = 24 * 3600.0
_SUFFIXES = {".yaml", ".yml", ".json"}
_VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".mkv", ".avi"}


class ScenarioError(ProctoringError):
    """A scenario file that cannot be used; the message names the file and what is wrong."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_Seconds = Annotated[float, Field(strict=True, gt=0, le=_MAX_SECONDS, allow_inf_nan=False)]


class VideoSegment(_Model):
    """A stretch of a recording: the whole file, or ``seconds`` of it from ``start``."""

    video: Path
    start: Annotated[float, Field(strict=True, ge=0, le=_MAX_SECONDS, allow_inf_nan=False)] = 0.0
    seconds: _Seconds | None = None

    @property
    def whole(self) -> bool:
        """True when the segment plays the entire recording."""
        return self.start == 0 and self.seconds is None


class PhotoSegment(_Model):
    """A still photo held for ``seconds``."""

    photo: Path
    seconds: _Seconds


class EmptySegment(_Model):
    """``empty`` seconds of an empty room: nobody in front of the camera."""

    empty: _Seconds

    @property
    def seconds(self) -> float:
        return self.empty


class TogetherSegment(_Model):
    """Two or three people side by side for ``seconds``: a second person beside the student.

    Each is a photo, or a recording's frame at 1 s (or its middle, if shorter); each
    fills an equal column of the canvas."""

    together: Annotated[list[Path], Field(min_length=2, max_length=3)]
    seconds: _Seconds


_KINDS: dict[str, type[_Model]] = {
    "video": VideoSegment,
    "photo": PhotoSegment,
    "empty": EmptySegment,
    "together": TogetherSegment,
}


def _segment_kind(value: Any) -> str | None:
    """The segment's kind: the one of :data:`_KINDS` it has (None if not exactly one)."""
    if isinstance(value, dict):
        kinds = [kind for kind in _KINDS if kind in value]
        return kinds[0] if len(kinds) == 1 else None
    return next((kind for kind, model in _KINDS.items() if isinstance(value, model)), None)


Segment = Annotated[
    Annotated[VideoSegment, Tag("video")]
    | Annotated[PhotoSegment, Tag("photo")]
    | Annotated[EmptySegment, Tag("empty")]
    | Annotated[TogetherSegment, Tag("together")],
    Discriminator(
        _segment_kind,
        custom_error_type="segment_kind",
        custom_error_message=(
            "a segment needs exactly one of 'video', 'photo', 'empty' or 'together'"
        ),
    ),
]
"""One segment of a scenario: a video, photo, empty or together segment."""


class _ScenarioFile(_Model):
    """A scenario file as written, before paths are resolved and checked."""

    student: Annotated[str, Field(strict=True, min_length=1, max_length=64)] | None = None
    # `register` is also an attribute of every pydantic model class (ABCMeta.register).
    photo: Path | None = Field(default=None, alias="register")
    segments: Annotated[list[Segment], Field(min_length=1)]


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One simulated student session, with every path absolute and checked."""

    student: str | None = None
    """The student id to upload as; None leaves it to the caller."""
    register: Path | None = None
    """The photo the student registers with."""
    segments: list[Segment] = field(default_factory=list)
    """Played one after the other."""
    name: str = ""
    """The scenario file's stem (``impostor``), or the recording's for a one-video scenario."""


def load_scenario(path: Path, *, data_dir: Path) -> Scenario:
    """Read and check a scenario file; relative paths in it resolve against ``data_dir``."""
    return _checked_scenario(path, _parse(path), data_dir)


def scenario_from_mapping(raw: dict[str, Any], *, name: str, data_dir: Path) -> Scenario:
    """A scenario written as a mapping (the content of a file) rather than read from a file.

    Errors name ``name`` where they would name the file."""
    try:
        parsed = _ScenarioFile.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(f"{name}: {_describe(exc)}") from exc
    return _checked_scenario(Path(name), parsed, data_dir)


def _checked_scenario(path: Path, parsed: _ScenarioFile, data_dir: Path) -> Scenario:
    base = data_dir.expanduser().resolve()
    register = None
    if parsed.photo is not None:
        register = _checked_photo(path, "register", _resolve(parsed.photo, base))
    segments = [_checked(path, i, segment, base) for i, segment in enumerate(parsed.segments)]
    return Scenario(student=parsed.student, register=register, segments=segments, name=path.stem)


def scenario_for_recording(
    path: Path, *, register: Path | None = None, student: str | None = None
) -> Scenario:
    """A scenario that plays one whole recording, as a phone or browser would upload it."""
    video = path.expanduser().resolve()
    if not video.is_file():
        raise ScenarioError(f"{path}: no such recording")
    photo = None
    if register is not None:
        photo = _checked_photo(path, "register", register.expanduser().resolve())
    return Scenario(
        student=student, register=photo, segments=[VideoSegment(video=video)], name=video.stem
    )


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
    encoded by its own libx264 encoder so it starts with a keyframe (a trailing chunk shorter
    than ``MIN_CHUNK_SECONDS`` is dropped). Video durations are read here, so an unreadable
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


def _parse(path: Path) -> _ScenarioFile:
    if path.suffix.lower() not in _SUFFIXES:
        raise ScenarioError(f"{path}: a scenario file ends in .yaml, .yml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ScenarioError(f"{path}: no such scenario file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read the file: {exc}") from exc
    try:
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(
            f"{path}: not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from exc
    if not isinstance(raw, dict):
        found = "nothing" if raw is None else type(raw).__name__
        raise ScenarioError(f"{path}: expected a mapping with a 'segments' list, found {found}")
    try:
        return _ScenarioFile.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(f"{path}: {_describe(exc)}") from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return str(exc)


def _describe(exc: ValidationError) -> str:
    return "; ".join(_describe_error(error) for error in exc.errors(include_url=False))


def _describe_error(error: ErrorDetails) -> str:
    loc = list(error["loc"])
    model: type[_Model] = _ScenarioFile
    if len(loc) >= 3 and loc[0] == "segments" and isinstance(loc[1], int):
        model = _KINDS.get(str(loc.pop(2)), _ScenarioFile)  # drop the union's tag
    where = _where(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(info.alias or name for name, info in model.model_fields.items())
        return f"{_where(loc[:-1]) or 'top level'}: unknown field {loc[-1]!r} (allowed: {allowed})"
    if kind == "missing":
        return f"{where}: required field missing"
    if kind == "too_short" and loc == ["segments"]:
        return "segments: needs at least one segment"
    shown = repr(error.get("input"))
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    message = error["msg"]
    return f"{where}: {message[:1].lower()}{message[1:]} (got {shown})"


def _where(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _resolve(value: Path, base: Path) -> Path:
    value = value.expanduser()
    return (value if value.is_absolute() else base / value).resolve()


def _checked(path: Path, i: int, segment: Segment, base: Path) -> Segment:
    where = f"segments[{i}]"
    if isinstance(segment, PhotoSegment):
        photo = _checked_photo(path, f"{where}.photo", _resolve(segment.photo, base))
        return segment.model_copy(update={"photo": photo})
    if isinstance(segment, VideoSegment):
        video = _resolve(segment.video, base)
        _check_video(path, where, segment, video)
        return segment.model_copy(update={"video": video})
    if isinstance(segment, TogetherSegment):
        parts = []
        for j, part in enumerate(segment.together):
            resolved = _resolve(part, base)
            if resolved.suffix.lower() in _VIDEO_SUFFIXES:
                _check_video(path, f"{where}.together[{j}]", VideoSegment(video=resolved), resolved)
            else:
                _checked_photo(path, f"{where}.together[{j}]", resolved)
            parts.append(resolved)
        return segment.model_copy(update={"together": parts})
    return segment


def _checked_photo(path: Path, where: str, photo: Path) -> Path:
    if not photo.is_file():
        raise ScenarioError(f"{path}: {where}: file not found: {photo}")
    try:
        with Image.open(photo):
            pass
    except OSError as exc:
        raise ScenarioError(f"{path}: {where}: not a readable image: {photo}") from exc
    return photo


def _check_video(path: Path, where: str, segment: VideoSegment, video: Path) -> None:
    if not video.is_file():
        raise ScenarioError(f"{path}: {where}.video: file not found: {video}")
    try:
        duration = recording_duration(video)
    except ChunkingError as exc:
        raise ScenarioError(f"{path}: {where}.video: not a readable video: {exc}") from exc
    if segment.start >= duration:
        raise ScenarioError(
            f"{path}: {where}.start: {segment.start:g} s is past the end of the video "
            f"({duration:.2f} s)"
        )
    if segment.seconds is not None and segment.start + segment.seconds > duration + _END_TOLERANCE:
        raise ScenarioError(
            f"{path}: {where}.seconds: start + seconds = {segment.start + segment.seconds:g} s "
            f"runs past the end of the video ({duration:.2f} s)"
        )


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
            yield from _video_frames(segment, count, fps=fps, size=size)
        elif isinstance(segment, PhotoSegment):
            frame = _to_frame(_paste(_photo_pixels(segment.photo, size), size))
            yield from itertools.repeat(frame, count)
        elif isinstance(segment, TogetherSegment):
            yield from itertools.repeat(_to_frame(_side_by_side(segment.together, size)), count)
        else:
            if empty is None:
                canvas = np.empty((size[1], size[0], 3), dtype=np.uint8)
                canvas[:] = _EMPTY_RGB
                empty = _to_frame(canvas)
            yield from itertools.repeat(empty, count)


def _video_frames(
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


def _photo_pixels(photo: Path, size: tuple[int, int]) -> np.ndarray:
    """The photo, turned by its EXIF orientation and scaled to fit ``size``, as RGB."""
    try:
        with Image.open(photo) as image:
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except OSError as exc:
        raise ScenarioError(f"{photo}: not a readable image: {exc}") from exc
    fitted = upright.resize(_fit(upright.width, upright.height, size), Image.Resampling.BILINEAR)
    return np.asarray(fitted, dtype=np.uint8)


def _paste(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
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
        if part.suffix.lower() in _VIDEO_SUFFIXES:
            at = min(1.0, recording_duration(part) / 2)
            segment = VideoSegment(video=part, start=at)
            frame = next(_video_frames(segment, 1, fps=1, size=(width, size[1])))
            pixels = frame.to_ndarray(format="rgb24")
        else:
            pixels = _paste(_photo_pixels(part, (width, size[1])), (width, size[1]))
        canvas[:, i * width : (i + 1) * width] = pixels
    return canvas


def _to_frame(canvas: np.ndarray) -> VideoFrame:
    return VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p")

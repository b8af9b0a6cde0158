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

``producer.rendering.render_chunks`` turns a scenario into self-contained chunks.

Errors::

    ProctoringError
     └── ScenarioError            the scenario file is missing, malformed or refers to a
                                  missing or unreadable file; the message names the file and
                                  the place, e.g. ``leaving.yaml: segments[1].seconds: ...``
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from PIL import Image
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError
from pydantic_core import ErrorDetails

from proctoring.errors import ProctoringError
from producer.chunking import ChunkingError, recording_duration

__all__ = [
    "EmptySegment",
    "PhotoSegment",
    "Scenario",
    "ScenarioError",
    "Segment",
    "TogetherSegment",
    "VideoSegment",
    "load_scenario",
    "scenario_for_recording",
    "scenario_from_mapping",
]

_END_TOLERANCE = 0.1
"""How far (seconds) a video segment may run past the end of its file; the last frame holds."""
_MAX_SECONDS = 24 * 3600.0
_SUFFIXES = {".yaml", ".yml", ".json"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".mkv", ".avi"}
"""What a ``together`` part is read as a recording by (anything else is a photo)."""


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
            if resolved.suffix.lower() in VIDEO_SUFFIXES:
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

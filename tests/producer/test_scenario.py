"""producer/scenario.py: the demo scenarios, rendering, and precise errors for bad files.

Real photos and recordings from ../shared/data; every chunk is decoded on its own, the way the
consumer receives it.
"""

from __future__ import annotations

import functools
import io
import json
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageOps

from producer.chunking import Chunk, chunk_recording
from producer.rendering import render_chunks
from producer.scenario import (
    EmptySegment,
    PhotoSegment,
    Scenario,
    ScenarioError,
    VideoSegment,
    load_scenario,
    scenario_for_recording,
    scenario_from_mapping,
)
from tests.conftest import DATA, needs_data

pytestmark = needs_data
SCENARIOS = Path(__file__).resolve().parents[2] / "producer" / "scenarios"
DEMOS = ("honest", "impostor", "second_person", "leaving")


@dataclass(frozen=True)
class Decoded:
    frames: int
    first_is_keyframe: bool
    rotation: int
    width: int
    height: int
    rate: Fraction | None
    first: np.ndarray  # RGB of the first frame
    middle: np.ndarray  # RGB of the middle frame


def decode_alone(chunk: Chunk) -> Decoded:
    with av.open(io.BytesIO(chunk.data), "r") as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert frames, f"chunk {chunk.index} decoded to nothing"
        return Decoded(
            frames=len(frames),
            first_is_keyframe=frames[0].key_frame,
            rotation=frames[0].rotation,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            rate=stream.average_rate,
            first=frames[0].to_ndarray(format="rgb24"),
            middle=frames[len(frames) // 2].to_ndarray(format="rgb24"),
        )


@functools.cache
def demo(name: str) -> Scenario:
    return load_scenario(SCENARIOS / f"{name}.yaml", data_dir=DATA)


@functools.cache
def rendered(name: str) -> tuple[Chunk, ...]:
    return tuple(render_chunks(demo(name)))


def letterboxed(photo: str, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """What a photo should look like on the canvas, made here independently with Pillow."""
    with Image.open(DATA / "faces" / photo) as image:
        fitted = ImageOps.contain(ImageOps.exif_transpose(image).convert("RGB"), size)
    canvas = Image.new("RGB", size)
    canvas.paste(fitted, ((size[0] - fitted.width) // 2, (size[1] - fitted.height) // 2))
    return np.asarray(canvas, dtype=np.float32)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def write(tmp_path: Path, text: str, name: str = "broken.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the demo scenarios -------------------------------------------------------------------


@pytest.mark.parametrize("name", DEMOS)
def test_each_demo_scenario_loads_with_absolute_existing_paths(name: str) -> None:
    scenario = demo(name)
    assert scenario.name == name
    assert scenario.student
    assert scenario.register is not None
    assert scenario.register.is_absolute() and scenario.register.is_file()
    for segment in scenario.segments:
        if isinstance(segment, VideoSegment):
            assert segment.video.is_absolute() and segment.video.is_file()
        elif isinstance(segment, PhotoSegment):
            assert segment.photo.is_absolute() and segment.photo.is_file()


def test_impostor_is_one_whole_phone_video_so_its_chunks_are_remuxed_and_turned() -> None:
    assert demo("impostor").register == DATA / "faces" / "obama.jpg"
    made = rendered("impostor")
    assert len(made) == 3  # 10.5 s
    assert all(c.remuxed for c in made)
    for chunk in made:
        decoded = decode_alone(chunk)
        assert decoded.first_is_keyframe
        assert decoded.rotation == -90, "the phone's rotation travels as from a real phone"
        assert (decoded.width, decoded.height) == (848, 480)


def test_honest_is_cut_like_the_recording_itself() -> None:
    made = rendered("honest")
    direct = list(chunk_recording(DATA / "video" / "short_hamilton_clip.mp4"))
    assert [(c.start, c.duration, c.remuxed) for c in made] == [
        (c.start, c.duration, c.remuxed) for c in direct
    ]
    assert len(made) == 2
    assert all(not c.remuxed for c in made)  # no keyframes at 5 s in this clip
    for chunk in made:
        decoded = decode_alone(chunk)
        assert decoded.first_is_keyframe
        assert (decoded.width, decoded.height) == (640, 360)  # its own size, not the canvas


def test_second_person_is_ten_seconds_alone_then_fifteen_with_others() -> None:
    made = rendered("second_person")
    assert len(made) == math.ceil(25 / 5)
    alone, crowd = letterboxed("obama.jpg"), letterboxed("obama_and_biden.jpg")
    for chunk in made:
        decoded = decode_alone(chunk)
        assert not chunk.remuxed
        assert decoded.first_is_keyframe
        assert (decoded.width, decoded.height) == (640, 480)
        assert decoded.frames == 75  # 5 s at 15 fps
        assert decoded.rotation == 0
        assert chunk.duration == pytest.approx(5.0)
        expected, other = (alone, crowd) if chunk.start < 10 else (crowd, alone)
        assert difference(decoded.middle, expected) < 8, "the frame shows the photo"
        assert difference(decoded.middle, other) > 3 * difference(decoded.middle, expected)
    assert [c.start for c in made] == [0, 5, 10, 15, 20]


def test_leaving_shows_an_empty_room_between_two_photos() -> None:
    made = rendered("leaving")
    assert len(made) == 6  # 10 + 15 + 5 s
    frames = [decode_alone(c).middle for c in made]
    present, empty, back = frames[:2], frames[2:5], frames[5]
    for frame in empty:
        assert float(frame.std()) < 5, "an empty room is one plain colour"
        assert 30 < float(frame.mean()) < 90, "a dim grey, not black"
    for frame in (*present, back):
        assert float(frame.std()) > 30
        assert abs(float(frame.mean()) - float(empty[0].mean())) > 10
    assert difference(present[0], letterboxed("obama2.jpg")) < 8
    assert difference(back, letterboxed("obama-480p.jpg")) < 8


def test_together_puts_two_people_side_by_side_and_both_faces_are_found() -> None:
    """A photo beside a recording's frame: each in its own half of the canvas; the
    pipeline's face detector finds two faces (what MULTIPLE_FACES needs)."""
    from proctoring.analysis.describe import describe_frame
    from proctoring.frames import extract_frame

    scenario = scenario_from_mapping(
        {
            "segments": [
                {"together": ["faces/obama.jpg", "talking/liveportrait/d19.mp4"], "seconds": 5}
            ]
        },
        name="together",
        data_dir=DATA,
    )
    (chunk,) = render_chunks(scenario)
    middle = decode_alone(chunk).middle
    assert difference(middle[:, :320], letterboxed("obama.jpg", (320, 480))) < 8, "the photo"
    assert float(middle[:, 320:].std()) > 30, "the recording's frame on the right"
    faces = describe_frame(extract_frame(chunk.data).jpeg, identity="no").faces
    assert len(faces) == 2
    assert sorted(f.box[0] < 320 for f in faces) == [False, True], "one face in each half"


def test_an_inline_scenario_is_checked_like_a_file_and_errors_name_it() -> None:
    with pytest.raises(ScenarioError, match=r"^alice-swap: segments\[0\]\.together\[1\]: file"):
        scenario_from_mapping(
            {"segments": [{"together": ["faces/obama.jpg", "faces/nobody.jpg"], "seconds": 5}]},
            name="alice-swap",
            data_dir=DATA,
        )
    with pytest.raises(ScenarioError, match=r"^alice: segments\[0\]\.together: "):
        scenario_from_mapping(
            {"segments": [{"together": ["faces/obama.jpg"], "seconds": 5}]},
            name="alice",
            data_dir=DATA,
        )


# --- rendering ----------------------------------------------------------------------------


def test_video_segments_are_turned_upright_and_letterboxed_on_the_canvas() -> None:
    scenario = Scenario(
        name="mixed",
        segments=[
            VideoSegment(video=DATA / "video" / "center_focus.mp4", start=1, seconds=3),
            PhotoSegment(photo=DATA / "faces" / "two_people.jpg", seconds=4),
            VideoSegment(video=DATA / "video" / "short_hamilton_clip.mp4", start=2, seconds=3),
            EmptySegment(empty=2),
        ],
    )
    made = list(render_chunks(scenario))
    assert len(made) == math.ceil(12 / 5)
    assert [c.duration for c in made] == pytest.approx([5.0, 5.0, 2.0])
    assert [decode_alone(c).frames for c in made] == [75, 75, 30]
    phone = decode_alone(made[0]).first
    assert decode_alone(made[0]).rotation == 0, "pixels are upright, no rotation left to apply"
    # Portrait (480x848 once upright) fits as 272x480 between black pillars of 184 px.
    assert float(phone[:, :170].mean()) < 20 and float(phone[:, -170:].mean()) < 20
    assert float(phone[:, 200:440].mean()) > 60
    assert float(phone[:20, 200:440].mean()) > 40, "the picture reaches the top edge"
    # The hamilton clip (16:9) sits between black bars above and below instead.
    stage = decode_alone(made[1]).middle
    assert float(stage[:50].mean()) < 20 and float(stage[-50:].mean()) < 20
    assert float(stage[:, :20].std()) > 5, "it reaches the left edge"


def test_fps_size_and_chunk_seconds_are_honoured() -> None:
    scenario = Scenario(
        name="small",
        segments=[
            PhotoSegment(photo=DATA / "faces" / "biden.jpg", seconds=3),
            EmptySegment(empty=2),
        ],
    )
    made = list(render_chunks(scenario, seconds=2, fps=10, size=(320, 240)))
    assert len(made) == math.ceil(5 / 2)
    assert [c.start for c in made] == pytest.approx([0, 2, 4])
    for chunk, frames in zip(made, (20, 20, 10), strict=True):
        decoded = decode_alone(chunk)
        assert decoded.first_is_keyframe
        assert (decoded.width, decoded.height, decoded.frames) == (320, 240, frames)
        assert decoded.rate == 10
        with av.open(io.BytesIO(chunk.data), "r") as container:
            stream = container.streams.video[0]
            assert stream.time_base is not None
            keyframes = [
                round(p.pts * stream.time_base * 10)  # in frames of 1/10 s
                for p in container.demux(stream)
                if p.is_keyframe and p.pts is not None
            ]
        assert keyframes == [0, frames // 2], "the second one where the consumer looks"


def test_render_arguments_are_checked() -> None:
    scenario = Scenario(name="x", segments=[EmptySegment(empty=1)])
    with pytest.raises(ValueError, match="even"):
        render_chunks(scenario, size=(641, 480))
    with pytest.raises(ValueError, match="positive"):
        render_chunks(scenario, seconds=0)


def test_a_recording_becomes_a_one_video_scenario() -> None:
    video = DATA / "video" / "center_focus.mp4"
    scenario = scenario_for_recording(video, register=DATA / "faces" / "obama.jpg", student="s1")
    assert scenario.name == "center_focus"
    assert scenario.student == "s1"
    assert scenario.segments == [VideoSegment(video=video)]
    assert [c.data for c in render_chunks(scenario)] == [c.data for c in chunk_recording(video)]
    with pytest.raises(ScenarioError, match="no such recording"):
        scenario_for_recording(DATA / "video" / "missing.mp4")


def test_json_has_the_same_structure(tmp_path: Path) -> None:
    document = {
        "student": "j1",
        "register": str(DATA / "faces" / "biden.jpg"),  # absolute paths stay as they are
        "segments": [{"photo": "faces/biden.jpg", "seconds": 2}, {"empty": 1.5}],
    }
    path = write(tmp_path, json.dumps(document), "session.json")
    scenario = load_scenario(path, data_dir=DATA)
    assert scenario.name == "session"
    assert scenario.register == DATA / "faces" / "biden.jpg"
    assert scenario.segments == [
        PhotoSegment(photo=DATA / "faces" / "biden.jpg", seconds=2),
        EmptySegment(empty=1.5),
    ]


# --- precise errors -----------------------------------------------------------------------

_SEGMENT = "  - photo: faces/obama.jpg\n    seconds: 5\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour: red\nsegments:\n" + _SEGMENT, "unknown field 'colour'"),
        (
            "segments:\n  - video: video/center_focus.mp4\n    sconds: 3\n",
            "segments[0]: unknown field 'sconds' (allowed: video, start, seconds)",
        ),
        ("segments:\n  - photo: faces/nobody.jpg\n    seconds: 5\n", "segments[0].photo: file"),
        (
            "segments:\n" + _SEGMENT + "  - photo: faces/obama.jpg\n    seconds: -5\n",
            "segments[1].seconds: input should be greater than 0 (got -5)",
        ),
        ("segments:\n" + _SEGMENT + "  - empty: -1\n", "segments[1].empty: input should be"),
        ("segments: []\n", "segments: needs at least one segment"),
        ("student: s\n", "segments: required field missing"),
        ("segments:\n  - photo: faces/obama.jpg\n", "segments[0].seconds: required field missing"),
        (
            "segments:\n  - photo: faces/obama.jpg\n    empty: 3\n",
            "segments[0]: a segment needs exactly one of 'video', 'photo', 'empty' or 'together'",
        ),
        ("segments:\n  - seconds: 3\n", "segments[0]: a segment needs exactly one of"),
        ("register: faces/nobody.jpg\nsegments:\n" + _SEGMENT, "register: file not found"),
        ("register: video/center_focus.mp4\nsegments:\n" + _SEGMENT, "not a readable image"),
        (
            "segments:\n  - video: video/short_hamilton_clip.mp4\n    start: 12\n",
            "segments[0].start: 12 s is past the end of the video (9.18 s)",
        ),
        (
            "segments:\n  - video: video/short_hamilton_clip.mp4\n    start: 8\n    seconds: 3\n",
            "segments[0].seconds: start + seconds = 11 s runs past the end",
        ),
        ("segments:\n  - video: faces/obama.jpg\n", "segments[0].video: not a readable video"),
        ("segments:\n  - empty: 3\n  oops: [\n", "not valid YAML: line 3"),
        ("- empty: 3\n", "expected a mapping with a 'segments' list, found list"),
        ("", "found nothing"),
    ],
)
def test_a_bad_scenario_names_the_file_and_the_mistake(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, data_dir=DATA)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message


def test_every_mistake_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = "segments:\n  - empty: 0\n  - photo: faces/obama.jpg\n    seconds: .inf\n  - {}\n"
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, text), data_dir=DATA)
    found = re.findall(r"segments\[(\d)\]", str(caught.value))
    assert found == ["0", "1", "2"]


def test_a_missing_scenario_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "absent.yaml", data_dir=DATA)
    with pytest.raises(ScenarioError, match=r"\.yaml, \.yml or \.json"):
        load_scenario(write(tmp_path, "segments: []", "notes.txt"), data_dir=DATA)

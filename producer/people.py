"""The people of ``../shared/data``, who is who, and the by-person split.

Every person the evaluation, ``bench.identity`` and ``bench.face_change`` use is
here once, with their photos and recordings (paths relative to the data
directory) and the two labels the data gives or a look at the footage does:

- **half**: ``development`` (thresholds are chosen on these people) or ``test``
  (figures are reported on these). Pairs and suites never cross halves, so no
  figure on the test half comes from a threshold tuned on the same faces.
- **gender** (woman / man) and **darker_skin** (True where labelled: CompreFace
  ``B`` by its manifest, and by eye Obama and Raj; None: not labelled), for the
  per-group breakdowns.

Who is who: SOURCES.md and MANIFEST-2.tsv; the liveportrait and video-retalking
clips are one person each.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from producer.chunking import recording_duration

__all__ = ["HONEST_SECONDS", "PEOPLE", "Half", "Person", "eval_sessions", "files"]

Half = Literal["development", "test"]


@dataclass(frozen=True)
class Person:
    half: Half
    gender: Literal["woman", "man"]
    """By the manifest where it says, otherwise by eye (the clips and photos)."""
    darker_skin: bool | None
    photos: tuple[str, ...] = ()
    videos: tuple[str, ...] = ()
    footage: bool = True
    """False for tight face crops (face-api.js: 150x150 grey, cut at the chin): good for
    measuring the embedding, but no camera shows a face that way, so they are not a
    camera's footage in the eval (each frame would be a face cut by the picture)."""

    @property
    def camera_videos(self) -> tuple[str, ...]:
        """The recordings that are one camera on this person (:data:`_EDITED` left out):
        what the eval shows as their webcam."""
        return tuple(v for v in self.videos if v not in _EDITED)

    @property
    def groups(self) -> tuple[str, ...]:
        """The labels a breakdown groups this person under (``women``, ``darker skin``)."""
        return ("women" if self.gender == "woman" else "men",) + (
            ("darker skin",) if self.darker_skin else ()
        )


_EDITED = frozenset({"video/short_hamilton_clip.mp4"})
"""Edited broadcast footage, not one camera on one person: the Hamilton clip cuts from a
wide stage shot to profile close-ups and then to the audience, where other people's faces
fill the frame (Obama's among them, another person of the suite). Labelled "honest, one
student" it would be a false label, so the eval shows its person by their photos; the
identity benchmark still pairs its frames with photos."""
_FACEAPI = "identities/faceapijs/examples/images"
_CROPS = "faceapi-"
"""The people known only from tight face crops."""
_COMPREFACE = "identities/compreface"
_HUMAN = "identities/human/identity"

_FILES: dict[Half, dict[str, dict[str, list[str]]]] = {
    "development": {
        "retalking-face1": {"videos": ["talking/video-retalking/face_1.mp4"]},
        "retalking-face4": {"videos": ["talking/video-retalking/face_4.mp4"]},
        "liveportrait-d9": {"videos": ["talking/liveportrait/d9.mp4"]},
        "liveportrait-d12": {"videos": ["talking/liveportrait/d12.mp4"]},
        "liveportrait-d18": {"videos": ["talking/liveportrait/d18.mp4"]},
        "compreface-A": {
            "photos": [f"{_COMPREFACE}/sample_images/00{i}_A.jpg" for i in range(1, 7)]
        },
        "compreface-FACE_1": {"photos": [f"{_COMPREFACE}/load-test-faces/verify_FACE_1.jpg"]},
        "compreface-FACE_3": {"photos": [f"{_COMPREFACE}/load-test-faces/verify_FACE_3.jpg"]},
        "human-vlado": {"photos": [f"{_HUMAN}/person-vlado{s}.jpg" for s in ("", "1", "5")]},
        "human-stock-a": {"photos": [f"{_HUMAN}/stock-emotions-a-{i}.jpg" for i in (1, 2, 3, 7)]},
        "alex-lacamoire": {"photos": ["faces/alex-lacamoire.png", "faces/alex_lacamoire1.jpg"]},
        **{
            f"faceapi-{n}": {"photos": [f"{_FACEAPI}/{n}/{n}{i}.png" for i in range(1, 6)]}
            for n in ("amy", "penny", "howard", "sheldon")
        },
    },
    "test": {
        "retalking-face2": {"videos": ["talking/video-retalking/face_2.mp4"]},
        "aoc": {
            "videos": [
                "talking/video-retalking/face_3.mp4",
                "talking/sadtalker/WDA_AlexandriaOcasioCortez_000.mp4",
            ]
        },
        "retalking-face5": {"videos": ["talking/video-retalking/face_5.mp4"]},
        "liveportrait-d19": {"videos": ["talking/liveportrait/d19.mp4"]},
        "liveportrait-d20": {"videos": ["talking/liveportrait/d20.mp4"]},
        "phone-man": {
            "videos": [
                "video/center_focus.mp4",
                "video/center_left_center.mp4",
                "video/center_right_center.mp4",
            ]
        },
        "lin-manuel-miranda": {
            "videos": ["video/short_hamilton_clip.mp4"],
            "photos": ["faces/lin-manuel-miranda.png"],
        },
        "obama": {"photos": ["faces/obama.jpg", "faces/obama2.jpg", "faces/obama-480p.jpg"]},
        "biden": {"photos": ["faces/biden.jpg"]},
        "kit-harington": {
            "photos": ["faces/john1.jpeg", "faces/john2.jpeg", "faces/johnsnow_test1.jpg"]
        },
        "rose-leslie": {"photos": ["faces/rose_leslie1.jpg", "faces/rose_leslie2.jpg"]},
        "compreface-B": {"photos": [f"{_COMPREFACE}/sample_images/00{i}_B.jpg" for i in (7, 8)]},
        "compreface-C": {"photos": [f"{_COMPREFACE}/sample_images/009_C.jpg"]},
        "human-stock-b": {"photos": [f"{_HUMAN}/stock-emotions-b-{i}.jpg" for i in (1, 4, 7, 8)]},
        "human-teen": {"photos": [f"{_HUMAN}/stock-teen-{i}.jpg" for i in (1, 2, 3, 4)]},
        **{
            f"faceapi-{n}": {"photos": [f"{_FACEAPI}/{n}/{n}{i}.png" for i in range(1, 6)]}
            for n in ("bernadette", "leonard", "raj", "stuart")
        },
        "compreface-FACE_2": {"photos": [f"{_COMPREFACE}/load-test-faces/verify_FACE_2.jpg"]},
    },
}
_WOMEN = {
    "retalking-face4",
    "compreface-A",
    "human-stock-a",
    "aoc",
    "retalking-face5",
    "rose-leslie",
    "compreface-B",
    "human-stock-b",
    "human-teen",
    "faceapi-amy",
    "faceapi-penny",
    "faceapi-bernadette",
}
_DARKER = {"compreface-B", "obama", "faceapi-raj"}


def files(half: Half, *, footage_only: bool = False) -> dict[str, dict[str, list[str]]]:
    """person -> ``{"videos": [...], "photos": [...]}`` of one half (``footage_only``: of
    the people whose pictures are camera footage, :attr:`Person.footage`)."""
    return {
        name: found
        for name, found in _FILES[half].items()
        if not footage_only or not name.startswith(_CROPS)
    }


PEOPLE: dict[str, Person] = {
    name: Person(
        half=half,
        gender="woman" if name in _WOMEN else "man",
        darker_skin=True if name in _DARKER else None,
        photos=tuple(found.get("photos", [])),
        videos=tuple(found.get("videos", [])),
        footage=not name.startswith(_CROPS),
    )
    for half, people in _FILES.items()
    for name, found in people.items()
}


# The sessions of the eval's people suite, per person (seconds).
HONEST_SECONDS = 150.0
"""The honest session's length: with the honest stretches of the other five sessions,
about 4.7 minutes of honest time per person (over an honest student-hour per half)."""
_PHOTO_HOLD = 10.0
"""How long one photo is held before the next of the same person: two chunks, shorter than
the LOOKING_AWAY window (three), so a portrait photographed with the head turned is one
pose held a while, not a student looking away for the rule's whole window."""


def _presence(
    person: Person, seconds: float, data_dir: Path, *, skip_first_photo: bool
) -> list[dict[str, Any]]:
    """Segments showing ``person`` for ``seconds``: their recordings in turn, looped, or
    their photos in turn, each held :data:`_PHOTO_HOLD` (the registration photo left out
    where there are others)."""
    segments: list[dict[str, Any]] = []
    left = seconds
    if person.camera_videos:
        sources = itertools.cycle(person.camera_videos)
        while left > 1e-6:
            video = next(sources)
            take = min(left, _duration(data_dir / video) - 0.05)
            segments.append({"video": video, "seconds": round(take, 3)})
            left -= take
        return segments
    photos = person.photos[1:] if skip_first_photo and len(person.photos) > 1 else person.photos
    for photo in itertools.cycle(photos):
        if left <= 1e-6:
            break
        take = min(left, _PHOTO_HOLD)
        segments.append({"photo": photo, "seconds": take})
        left -= take
    return segments


@functools.cache
def _duration(path: Path) -> float:
    return recording_duration(path)


def _still(person: Person) -> str:
    """A photo of ``person`` (the last), or their first recording (its frame at 1 s)."""
    return person.photos[-1] if person.photos else person.camera_videos[0]


def _someone_else(person: Person, seconds: float, data_dir: Path) -> list[dict[str, Any]]:
    """``person`` as the impostor: their photos where they have any (a face the camera sees,
    as an impostor sitting the exam faces it), else their recordings. A recording may open
    on a turned or blurred face (the stage clip does), which no one could identify, and
    the incident's label says identity is there to be checked."""
    if person.photos:
        person = replace(person, videos=())
    return _presence(person, seconds, data_dir, skip_first_photo=False)


def _partner(name: str, names: list[str], *, offset: int) -> str:
    """Another person of the same half: of the same gender where there is one (the harder
    case), ``offset`` places along, so each person is someone's partner."""
    gender = PEOPLE[name].gender
    same = [n for n in names if PEOPLE[n].gender == gender]
    pool = same if len(same) > 1 else names
    return pool[(pool.index(name) + offset) % len(pool)]


def eval_sessions(half: Half | Literal["all"], data_dir: Path) -> list[dict[str, Any]]:
    """The people suite of ``proctor eval``: six labelled sessions per person of ``half``
    whose photos or recordings are camera footage (:attr:`Person.footage`).

    Per person P (partners Q and R are other people of the same half, so a suite of one
    half uses no face of the other):

    - ``honest``: P for :data:`HONEST_SECONDS`;
    - ``swap``: P for 10 s, then Q takes the seat for 15 s (FACE_MISMATCH 10-25 s);
    - ``swap-late``: P for 60 s, Q for 15 s, P again for 10 s (FACE_MISMATCH 60-75 s):
      the swap after a long honest stretch, where a schedule has stopped checking;
    - ``leaves``: P for 10 s, an empty room for 15 s, P for 10 s (NO_FACE 10-25 s);
    - ``second-person``: P for 10 s, P beside R for 15 s, P for 10 s (MULTIPLE_FACES);
    - ``break-swap``: P for 10 s, nobody for 10 s, then Q comes back in P's place for 15 s
      (NO_FACE 10-20 s, FACE_MISMATCH 20-35 s): the swap during a break.

    P registers with their first photo, or the first frame of their first recording, and
    enrols camera frames from the session's start (``enrol_frames``), as the student page
    does. Each entry is a suite entry (``cli.eval_suite.SuiteEntry``) with its
    scenario inline.
    """
    names = sorted(n for n, p in PEOPLE.items() if p.footage and (half == "all" or p.half == half))
    entries: list[dict[str, Any]] = []
    for name in names:
        person = PEOPLE[name]
        names_of_half = [n for n in names if PEOPLE[n].half == person.half]
        q = PEOPLE[_partner(name, names_of_half, offset=1)]
        r = PEOPLE[_partner(name, names_of_half, offset=2)]
        together = {"together": [_still(person), _still(r)], "seconds": 15}
        register = {"register": person.photos[0]} if person.photos else {}
        frame = {} if person.photos else {"register_frame": person.camera_videos[0]}

        def me(seconds: float, p: Person = person) -> list[dict[str, Any]]:
            return _presence(p, seconds, data_dir, skip_first_photo=True)

        def other(p: Person, seconds: float) -> list[dict[str, Any]]:
            return _someone_else(p, seconds, data_dir)

        sessions: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
            "honest": (me(HONEST_SECONDS), []),
            "swap": (
                me(10) + other(q, 15),
                [{"rule": "FACE_MISMATCH", "start": 10, "end": 25}],
            ),
            "swap-late": (
                me(60) + other(q, 15) + me(10),
                [{"rule": "FACE_MISMATCH", "start": 60, "end": 75}],
            ),
            "leaves": (
                [*me(10), {"empty": 15}, *me(10)],
                [{"rule": "NO_FACE", "start": 10, "end": 25}],
            ),
            "second-person": (
                [*me(10), together, *me(10)],
                [{"rule": "MULTIPLE_FACES", "start": 10, "end": 25}],
            ),
            "break-swap": (
                [*me(10), {"empty": 10}, *other(q, 15)],
                [
                    {"rule": "NO_FACE", "start": 10, "end": 20},
                    {"rule": "FACE_MISMATCH", "start": 20, "end": 35},
                ],
            ),
        }
        for kind, (segments, incidents) in sessions.items():
            entries.append(
                {
                    "name": f"{name}-{kind}",
                    "scenario": {**register, "segments": segments},
                    **frame,
                    "enrol_frames": True,
                    "person": name,
                    "groups": list(person.groups),
                    "incidents": incidents,
                }
            )
    return entries

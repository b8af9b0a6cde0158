"""producer/people.py: who is who, the by-person split, and the eval's people suite."""

from __future__ import annotations

from typing import Any

import pytest

from proctoring.cli.eval_run import people_suite
from producer.people import HONEST_SECONDS, PEOPLE, eval_sessions
from tests.conftest import DATA, needs_data

pytestmark = needs_data


def _files(entry: dict[str, Any]) -> set[str]:
    scenario = entry["scenario"]
    named = {scenario["register"]} if "register" in scenario else set()
    if "register_frame" in entry:
        named.add(entry["register_frame"])
    for segment in scenario["segments"]:
        named |= {segment[k] for k in ("video", "photo") if k in segment}
        named |= set(segment.get("together", []))
    return named


def _owner() -> dict[str, str]:
    return {f: name for name, p in PEOPLE.items() for f in (*p.photos, *p.videos)}


def test_the_suite_has_150_sessions_of_25_people_six_each() -> None:
    entries = eval_sessions("all", DATA)
    people = {e["person"] for e in entries}
    assert len(entries) >= 150
    assert len(people) >= 25
    assert all(sum(e["person"] == p for e in entries) == 6 for p in people)
    assert people == {n for n, p in PEOPLE.items() if p.footage}, "tight crops are no footage"
    assert len({e["name"] for e in entries}) == len(entries), "every session named once"


@pytest.mark.parametrize("half", ["test", "development"])
def test_a_half_uses_only_faces_of_its_own_people(half: str) -> None:
    """Thresholds are chosen on the development half and figures reported on the test half:
    no session of one half shows (as student, impostor or second person) anyone of the
    other, so no reported figure rests on a face a threshold was tuned on."""
    owner = _owner()
    for entry in eval_sessions(half, DATA):  # type: ignore[arg-type]
        halves = {PEOPLE[owner[f]].half for f in _files(entry)}
        assert halves == {half}, entry["name"]


def test_each_incident_shows_what_its_label_says() -> None:
    """The swap shows someone else; the second person is someone else beside the student;
    the student's own sessions show only the student (and the room). No session shows
    edited broadcast footage as a webcam: the Hamilton clip cuts to the audience, whose
    faces would make "honest, one student" a false label."""
    owner = _owner()
    for entry in eval_sessions("all", DATA):
        assert "video/short_hamilton_clip.mp4" not in _files(entry), entry["name"]
        me = entry["person"]
        shown = [
            {owner[f] for f in (s.get("together") or [s.get("video") or s.get("photo")]) if f}
            for s in entry["scenario"]["segments"]
        ]
        kind = entry["name"].removeprefix(f"{me}-")
        rules = [i["rule"] for i in entry["incidents"]]
        if kind == "honest":
            assert rules == [] and all(s == {me} for s in shown)
        elif kind in ("swap", "swap-late"):
            assert rules == ["FACE_MISMATCH"]
            assert any(me not in s for s in shown), "someone else takes the seat"
        elif kind == "leaves":
            assert rules == ["NO_FACE"] and set() in shown
        elif kind == "break-swap":
            assert rules == ["NO_FACE", "FACE_MISMATCH"] and set() in shown
            assert me not in shown[-1], "someone else comes back"
        else:
            assert rules == ["MULTIPLE_FACES"]
            assert any(len(s) == 2 and me in s for s in shown)


def test_the_test_half_holds_over_an_honest_student_hour() -> None:
    suite = people_suite("test", DATA)
    honest = 0.0
    for entry in suite.scenarios:
        assert entry.scenario is not None
        total = sum(
            float(s.get("seconds") or s.get("empty") or 0) for s in entry.scenario["segments"]
        )
        honest += total - sum(i.end - i.start for i in entry.incidents)
    assert honest / 3600 >= 1.0
    assert HONEST_SECONDS * len({e.person for e in suite.scenarios}) / 3600 < honest / 3600
    assert all(e.enrol_frames for e in suite.scenarios), "frames enrolled as the page does"


def test_groups_are_labelled_for_the_breakdown() -> None:
    groups = {g for p in PEOPLE.values() for g in p.groups}
    assert groups == {"women", "men", "darker skin"}
    test_half = [p for p in PEOPLE.values() if p.half == "test"]
    assert sum(p.gender == "woman" for p in test_half if p.footage) >= 5
    assert sum(bool(p.darker_skin) for p in test_half if p.footage) >= 2


def test_every_person_is_in_one_half_and_every_file_is_in_the_data() -> None:
    assert {p.half for p in PEOPLE.values()} == {"development", "test"}
    files = [f for p in PEOPLE.values() for f in (*p.photos, *p.videos)]
    assert len(files) == len(set(files)), "a file belongs to one person"
    assert [f for f in files if not (DATA / f).is_file()] == []

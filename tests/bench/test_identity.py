"""``bench.identity_pairs``: the by-person split, the pairs it makes, and the threshold rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from bench.identity_pairs import Pairs, Sample, choose_threshold, pairs
from producer.people import PEOPLE

ROOT = Path(__file__).resolve().parents[2]


def _sample(person: str, source: str, second: float | None, at: float) -> Sample:
    return Sample(person, source, second, (at,) + (0.0,) * 127)


def test_the_eval_suites_people_are_never_in_the_development_half() -> None:
    """The threshold is chosen on people the eval does not score (no tuning on the test)."""
    eval_dir = ROOT / "producer" / "scenarios" / "eval"
    used: set[str] = set()
    for path in [*eval_dir.glob("*.yaml"), *eval_dir.parent.glob("*.yaml")]:
        text = yaml.safe_load(path.read_text()) or {}
        for segment in text.get("segments", []) or []:
            used |= {str(v) for k, v in segment.items() if k in ("video", "photo")}
        if text.get("register"):
            used.add(str(text["register"]))
    development = {
        f for p in PEOPLE.values() if p.half == "development" for f in (*p.photos, *p.videos)
    }
    assert used, "the scenarios name their files"
    assert used & development == set()


def test_pairs_are_sorted_by_kind_and_never_pair_a_frame_with_itself_or_a_neighbour() -> None:
    samples = [
        _sample("ann", "a.mp4", 0.0, 0.0),
        _sample("ann", "a.mp4", 0.5, 0.05),  # < 1 s from the first: not a pair
        _sample("ann", "a.mp4", 2.0, 0.2),
        _sample("ann", "ann.jpg", None, 0.4),
        _sample("bob", "bob.jpg", None, 1.0),
    ]
    found = pairs(samples)
    counts = {kind: len(values) for kind, values in found.distances.items()}
    assert counts == {
        "genuine frame-frame, one recording": 2,  # (0, 2) and (0.5, 2)
        "genuine frame-photo": 3,
        "impostor frame-photo": 3,
        "impostor photo-photo": 1,
    }
    assert found.distances["impostor photo-photo"][0] == np.float64(0.6)
    assert all(a != b for a, b in found.people["impostor frame-photo"])


def test_the_threshold_is_the_smallest_that_keeps_every_kind_within_the_budget() -> None:
    easy = np.full(200, 0.30)
    hard = np.asarray([0.40] * 99 + [0.57])  # one of 100 above 0.56: 1 % at 0.56
    development = Pairs(
        distances={"genuine frame-frame, one recording": easy, "genuine photo-photo": hard},
        people={},
    )
    every_kind = ("genuine",)
    assert choose_threshold(development, budget=0.01, kinds=every_kind) == 0.40
    assert choose_threshold(development, budget=0.005, kinds=every_kind) == 0.57
    # the enrolled-frames rule (the default's) holds the budget on frame-frame pairs only
    assert choose_threshold(development, budget=0.005) == 0.30

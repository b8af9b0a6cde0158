"""The pure half of ``bench.identity``: pairs of faces by kind, their error rates, and the
rule that chooses the threshold on the development half.

A :class:`Sample` is one face (a photo, or a recording's frame) with its embedding;
:func:`pairs` pairs one half's samples by kind (same person: photo, frame-frame of
one recording or of two; different people), :func:`choose_threshold` applies the
budget, and :func:`report_at` gives FNMR and FMR at a threshold, pooled, per kind,
per group and per person, with Wilson 95 % intervals.
"""

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from proctoring.stats import wilson
from producer.people import PEOPLE

__all__ = [
    "BUDGET",
    "GRID",
    "RULE",
    "RULES",
    "Pairs",
    "Sample",
    "choose_threshold",
    "curve",
    "distance_summary",
    "fmr",
    "fnmr",
    "pairs",
    "report_at",
]

BUDGET = 0.01
"""At most this share of same-person pairs of each kind above the threshold (dev half)."""
GRID = np.round(np.arange(0.30, 0.901, 0.01), 2)
"""The thresholds tried."""


@dataclass(frozen=True)
class Sample:
    person: str
    source: str
    """The file: a photo, or the recording a frame comes from."""
    second: float | None
    """The frame's second in its recording; None for a photo."""
    embedding: tuple[float, ...]

    @property
    def kind(self) -> Literal["photo", "frame"]:
        return "photo" if self.second is None else "frame"


def _pair_kind(a: Sample, b: Sample) -> str | None:
    kinds = "-".join(sorted((a.kind, b.kind)))
    if a.person != b.person:
        return f"impostor {kinds}"
    if kinds != "frame-frame":
        return None if a.source == b.source else f"genuine {kinds}"
    if a.source != b.source:
        return "genuine frame-frame, two recordings"
    if a.second is not None and b.second is not None and abs(a.second - b.second) >= 1:
        return "genuine frame-frame, one recording"
    return None


@dataclass
class Pairs:
    """Distances of one half's pairs, by kind, with the two people of each pair."""

    distances: dict[str, np.ndarray]
    people: dict[str, list[tuple[str, str]]]

    def genuine(self) -> np.ndarray:
        return _concat(v for k, v in self.distances.items() if k.startswith("genuine"))

    def impostor(self) -> np.ndarray:
        return _concat(v for k, v in self.distances.items() if k.startswith("impostor"))


def _concat(arrays: Iterable[np.ndarray]) -> np.ndarray:
    listed = list(arrays)
    return np.concatenate(listed) if listed else np.zeros(0)


def pairs(samples: list[Sample]) -> Pairs:
    """Every pair of ``samples`` (one half), its distance, by kind."""
    distances: dict[str, list[float]] = {}
    people: dict[str, list[tuple[str, str]]] = {}
    matrix = np.asarray([s.embedding for s in samples], dtype=np.float64)
    for i, j in itertools.combinations(range(len(samples)), 2):
        kind = _pair_kind(samples[i], samples[j])
        if kind is None:
            continue
        distances.setdefault(kind, []).append(float(np.linalg.norm(matrix[i] - matrix[j])))
        people.setdefault(kind, []).append((samples[i].person, samples[j].person))
    return Pairs(
        distances={k: np.asarray(v) for k, v in sorted(distances.items())},
        people={k: people[k] for k in sorted(people)},
    )


def fnmr(genuine: np.ndarray, threshold: float) -> float:
    return float((genuine > threshold).mean()) if len(genuine) else 0.0


def fmr(impostor: np.ndarray, threshold: float) -> float:
    return float((impostor <= threshold).mean()) if len(impostor) else 0.0


RULES: dict[str, tuple[str, ...]] = {
    "enrolled frames": ("genuine frame-frame",),
    "photo registration": ("genuine",),
}
"""Which same-person pairs the budget holds on. **enrolled frames** (the default's rule):
the frame-frame pairs, what a check compares once frames of the student's own camera are
enrolled at exam start (the best of them decides). **photo registration**: every kind,
photo pairs too (a registration photo alone)."""
RULE = "enrolled frames"


def choose_threshold(
    development: Pairs, budget: float = BUDGET, kinds: tuple[str, ...] = RULES[RULE]
) -> float:
    """The smallest grid threshold at which the FNMR of every same-person kind whose name
    starts with one of ``kinds`` is within ``budget``."""
    chosen = [
        values
        for kind, values in development.distances.items()
        if kind.startswith(kinds) and len(values)
    ]
    for threshold in GRID:
        if all(fnmr(values, float(threshold)) <= budget for values in chosen):
            return float(threshold)
    return float(GRID[-1])


def _rate(errors: int, trials: int) -> dict[str, Any]:
    low, high = wilson(errors, trials)
    return {
        "rate": round(errors / trials, 4) if trials else None,
        "errors": errors,
        "pairs": trials,
        "ci95": [round(low, 4), round(high, 4)],
    }


def report_at(half: Pairs, threshold: float) -> dict[str, Any]:
    """FNMR and FMR at ``threshold``: pooled, per kind, per group, per person."""
    genuine, impostor = half.genuine(), half.impostor()
    per_kind = {
        kind: _rate(
            int(
                (values > threshold).sum()
                if kind.startswith("genuine")
                else (values <= threshold).sum()
            ),
            len(values),
        )
        for kind, values in half.distances.items()
    }
    groups: dict[str, dict[str, Any]] = {}
    for label, belongs in (
        ("women", lambda p: PEOPLE[p].gender == "woman"),
        ("men", lambda p: PEOPLE[p].gender == "man"),
        ("darker skin (labelled)", lambda p: PEOPLE[p].darker_skin is True),
    ):
        same = _concat(
            v[[belongs(a) for a, _ in half.people[k]]]
            for k, v in half.distances.items()
            if k.startswith("genuine")
        )
        # an impostor pair belongs to the group when the *registered* side (either) does
        other = _concat(
            v[[belongs(a) or belongs(b) for a, b in half.people[k]]]
            for k, v in half.distances.items()
            if k.startswith("impostor")
        )
        names = {a for k in half.people for a, _ in half.people[k] if belongs(a)}
        groups[label] = {
            "people": len(names),
            "fnmr": _rate(int((same > threshold).sum()), len(same)),
            "fmr": _rate(int((other <= threshold).sum()), len(other)),
        }
    accused: set[str] = set()
    with_genuine: set[str] = set()
    for kind, values in half.distances.items():
        if kind.startswith("genuine"):
            for (person, _), value in zip(half.people[kind], values, strict=True):
                with_genuine.add(person)
                if value > threshold:
                    accused.add(person)
    enrolled = _concat(v for k, v in half.distances.items() if k.startswith(RULES[RULE]))
    return {
        "threshold": threshold,
        "fnmr": _rate(int((genuine > threshold).sum()), len(genuine)),
        "fnmr_frame_frame": _rate(int((enrolled > threshold).sum()), len(enrolled)),
        "fmr": _rate(int((impostor <= threshold).sum()), len(impostor)),
        "per_kind": per_kind,
        "per_group": groups,
        "people_with_a_false_non_match": {
            **_rate(len(accused), len(with_genuine)),
            "who": sorted(accused),
        },
    }


def distance_summary(values: np.ndarray) -> dict[str, Any]:
    if not len(values):
        return {"pairs": 0}
    return {
        "pairs": len(values),
        "min": round(float(values.min()), 3),
        "median": round(float(np.median(values)), 3),
        "p99": round(float(np.percentile(values, 99)), 3),
        "max": round(float(values.max()), 3),
    }


def curve(half: Pairs) -> dict[str, list[float]]:
    genuine, impostor = half.genuine(), half.impostor()
    return {
        "threshold": [float(t) for t in GRID],
        "fnmr": [round(fnmr(genuine, float(t)), 5) for t in GRID],
        "fmr": [round(fmr(impostor, float(t)), 5) for t in GRID],
    }

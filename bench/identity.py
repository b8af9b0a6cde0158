"""``python -m bench.identity``: false-match and false-non-match rates of the face embedding.

The local engine calls a face the registered student when the distance between
the two 128-d dlib embeddings is at most ``PROCTOR_MATCH_THRESHOLD``. This
measures, on every same-person and different-person pair ``../shared/data``
allows, how often that line is wrong either way:

- **FNMR** (false non-match rate): same person, distance above the threshold.
  In the product an honest student is called someone else (a FACE_MISMATCH
  alert if it lasts the rule's tolerance): the false accusation.
- **FMR** (false match rate): two different people, distance at or below the
  threshold: an impostor passes that check.

Pairs, by where the two faces come from: a **photo** (the file's bytes, as a
registration photo is uploaded) or a **frame** (a recording sampled at 1 frame/s
and rendered on the 640x480 canvas as a scenario renders it, then JPEG): photo-photo,
photo-frame, frame-frame of one recording (1 s or more apart: what frames enrolled
at exam start face later) and frame-frame of two recordings. Every face goes through
the engine's own :func:`~proctoring.analysis.faces.detect_faces` (HOG detector,
5-point alignment, ResNet encoder; the main face = the largest), in a process pool
of at most 2 workers.

**Split by person, never tuned on the whole set.** :data:`PEOPLE` puts every person
in one half, written down here (the halves of ``bench/face_change.py``, plus the
face-api.js people and CompreFace's ``FACE_2``); pairs never cross halves. The
threshold is chosen on the **development** half: the smallest (on a 0.01 grid) at
which the FNMR of every kind of same-person pair a rule names (:data:`RULES`) is within
the false-accusation budget (:data:`BUDGET`). Two rules, both reported: *enrolled
frames* (frame-frame pairs: what a check compares once frames of the student's own
camera are enrolled; the rule of the default) and *photo registration* (photo pairs
too: a registration photo alone). The **test** half (every person of the eval suite,
and others) reports FMR and FNMR at each, at the default and at the previous default,
with Wilson 95 % intervals, per kind of pair and per group (women / men; darker skin
where labelled).

Pairs share faces, so they are not independent: the intervals over pairs are
narrower than the truth. The per-person line (people of the test half with at least
one false non-match) counts independent units.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
from collections.abc import Iterable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
from PIL import Image

from proctoring.analysis.faces import detect_faces, warm_up
from proctoring.settings import Settings
from proctoring.stats import wilson
from producer.people import PEOPLE, Person
from producer.rendering import video_frames
from producer.scenario import VideoSegment

__all__ = [
    "BUDGET",
    "PEOPLE",
    "RULE",
    "RULES",
    "Person",
    "Sample",
    "choose_threshold",
    "measure",
    "pairs",
]

BUDGET = 0.01
"""At most this share of same-person pairs of each kind above the threshold (dev half)."""
_SIZE = (640, 480)
_FPS = 1
_GRID = np.round(np.arange(0.30, 0.901, 0.01), 2)
_WORKERS = 2
PREVIOUS_DEFAULT = 0.55
"""The default before this measurement (chosen on one impostor pair; docs/operations.md)."""
RESULTS = Path(__file__).resolve().parent / "results" / "identity.json"
PLOT = Path(__file__).resolve().parents[1] / "docs" / "identity-curve.png"


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


def _main_embedding(image: bytes) -> tuple[float, ...] | None:
    faces = detect_faces(image).faces
    if not faces:
        return None
    return max(faces, key=lambda f: f.box[2] * f.box[3]).embedding


def _photo_job(path: Path) -> tuple[float, ...] | None:
    """Process-pool job: the main face of a photo, from the file's bytes as uploaded."""
    return _main_embedding(path.read_bytes())


def _video_job(path: Path, fps: int) -> list[tuple[float, tuple[float, ...]]]:
    """Process-pool job: (second, main face) of a recording's frames at ``fps``."""
    segment = VideoSegment(video=path)
    with av.open(str(path)) as container:
        seconds = float(container.duration or 0) / av.time_base
    found = []
    count = max(int(seconds * fps), 1)
    for index, frame in enumerate(video_frames(segment, count, fps=fps, size=_SIZE)):
        buffer = io.BytesIO()
        Image.fromarray(frame.to_ndarray(format="rgb24")).save(buffer, "JPEG", quality=90)
        embedding = _main_embedding(buffer.getvalue())
        if embedding is not None:
            found.append((index / fps, embedding))
    return found


def embed(data: Path, people: dict[str, Person], pool: Executor, fps: int = _FPS) -> list[Sample]:
    """Every person's faces (photos, and frames of recordings), computed in ``pool``."""
    photo_jobs = {
        (name, photo): pool.submit(_photo_job, data / photo)
        for name, person in people.items()
        for photo in person.photos
    }
    video_jobs = {
        (name, video): pool.submit(_video_job, data / video, fps)
        for name, person in people.items()
        for video in person.videos
    }
    samples = []
    for (name, photo), photo_job in photo_jobs.items():
        embedding = photo_job.result()
        if embedding is not None:
            samples.append(Sample(name, photo, None, embedding))
    for (name, video), video_job in video_jobs.items():
        samples += [Sample(name, video, s, e) for s, e in video_job.result()]
    return samples


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
    for threshold in _GRID:
        if all(fnmr(values, float(threshold)) <= budget for values in chosen):
            return float(threshold)
    return float(_GRID[-1])


def _rate(errors: int, trials: int) -> dict[str, Any]:
    low, high = wilson(errors, trials)
    return {
        "rate": round(errors / trials, 4) if trials else None,
        "errors": errors,
        "pairs": trials,
        "ci95": [round(low, 4), round(high, 4)],
    }


def _at(half: Pairs, threshold: float) -> dict[str, Any]:
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


def _summary(values: np.ndarray) -> dict[str, Any]:
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
        "threshold": [float(t) for t in _GRID],
        "fnmr": [round(fnmr(genuine, float(t)), 5) for t in _GRID],
        "fmr": [round(fmr(impostor, float(t)), 5) for t in _GRID],
    }


def measure(data: Path, *, budget: float = BUDGET, fps: int = _FPS) -> dict[str, Any]:
    """Both halves embedded and paired; threshold chosen on development, reported on test."""
    with ProcessPoolExecutor(max_workers=_WORKERS, initializer=warm_up) as pool:
        samples = embed(data, PEOPLE, pool, fps=fps)
    halves = {
        half: pairs([s for s in samples if PEOPLE[s.person].half == half])
        for half in ("development", "test")
    }
    thresholds = {
        rule: choose_threshold(halves["development"], budget, kinds)
        for rule, kinds in RULES.items()
    }
    chosen = thresholds[RULE]
    default = Settings.model_fields["match_threshold"].default
    return {
        "split": {
            half: sorted(n for n, p in PEOPLE.items() if p.half == half)
            for half in ("development", "test")
        },
        "samples": {
            half: {
                "photos": sum(
                    1 for s in samples if PEOPLE[s.person].half == half and s.second is None
                ),
                "frames": sum(
                    1 for s in samples if PEOPLE[s.person].half == half and s.second is not None
                ),
            }
            for half in ("development", "test")
        },
        "budget": {
            "fnmr_at_most": budget,
            "rules": {
                rule: f"the smallest threshold (0.01 grid) at which every kind of same-person "
                f"pair starting {kinds} of the development half has an FNMR within the budget"
                for rule, kinds in RULES.items()
            },
            "rule": RULE,
        },
        "thresholds": thresholds,
        "chosen_threshold": chosen,
        "default_threshold": default,
        "distances": {
            half: {k: _summary(v) for k, v in p.distances.items()} for half, p in halves.items()
        },
        "development": {rule: _at(halves["development"], t) for rule, t in thresholds.items()},
        "test": {
            **{rule: _at(halves["test"], t) for rule, t in thresholds.items()},
            "default": _at(halves["test"], default),
            "previous default": _at(halves["test"], PREVIOUS_DEFAULT),
        },
        "curves": {half: curve(p) for half, p in halves.items()},
    }


def plot(report: dict[str, Any], path: Path) -> None:
    """FMR and FNMR against the threshold, both halves, the chosen and default lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for axis, half in zip(axes, ("development", "test"), strict=True):
        points = report["curves"][half]
        axis.plot(
            points["threshold"], points["fnmr"], label="FNMR (honest student called someone else)"
        )
        axis.plot(points["threshold"], points["fmr"], label="FMR (impostor passes)")
        axis.axvline(
            report["thresholds"]["photo registration"],
            color="tab:red",
            linestyle="-.",
            linewidth=1,
            label=f"photo-registration rule {report['thresholds']['photo registration']:.2f}",
        )
        axis.axvline(
            report["chosen_threshold"],
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"chosen (enrolled frames) {report['chosen_threshold']:.2f}",
        )
        axis.axvline(
            PREVIOUS_DEFAULT,
            color="grey",
            linestyle=":",
            linewidth=1,
            label=f"previous default {PREVIOUS_DEFAULT:.2f}",
        )
        axis.axhline(report["budget"]["fnmr_at_most"], color="tab:blue", alpha=0.3, linewidth=1)
        pairs_ = report["distances"][half]
        genuine = sum(v["pairs"] for k, v in pairs_.items() if k.startswith("genuine"))
        impostor = sum(v["pairs"] for k, v in pairs_.items() if k.startswith("impostor"))
        people = len(report["split"][half])
        axis.set_title(f"{half} half: {people} people, {genuine} same / {impostor} different pairs")
        axis.set_xlabel("threshold (dlib embedding distance)")
        axis.set_yscale("log")
        axis.set_ylim(1e-4, 1.0)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("error rate (log)")
    axes[0].legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _text(report: dict[str, Any]) -> str:
    lines = [
        f"development half: FNMR at most {report['budget']['fnmr_at_most']:.0%} per kind of "
        f"same-person pair; the default is {report['default_threshold']:.2f}"
    ]
    for rule, threshold in report["thresholds"].items():
        mark = " (the rule of the default)" if rule == report["budget"]["rule"] else ""
        lines.append(f"  {rule}{mark}: {threshold:.2f}")
    for name, at in report["test"].items():
        lines.append(f"test half at {at['threshold']:.2f} ({name}):")
        for label in ("fnmr", "fnmr_frame_frame", "fmr"):
            rate = at[label]
            lines.append(
                f"  {label.upper():16} {rate['rate']:.4f} ({rate['errors']} of {rate['pairs']}), "
                f"95% Wilson [{rate['ci95'][0]:.4f}, {rate['ci95'][1]:.4f}]"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--budget", type=float, default=BUDGET, help="FNMR at most (dev half)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=PLOT)
    args = parser.parse_args()
    report = measure(args.data, budget=args.budget)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    plot(report, args.plot)
    print(_text(report))
    print(f"figures: {args.json}; curve: {args.plot}")


if __name__ == "__main__":
    main()

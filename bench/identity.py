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

**Split by person, never tuned on the whole set.** ``producer.people.PEOPLE`` puts
every person in one half, written down there (the halves of ``bench/face_change.py``,
plus the face-api.js people and CompreFace's ``FACE_2``); pairs never cross halves.
The threshold is chosen on the **development** half: the smallest (on a 0.01 grid)
at which the FNMR of every kind of same-person pair a rule names (``RULES``) is
within the false-accusation budget (``BUDGET``). Two rules, both reported: *enrolled
frames* (frame-frame pairs: what a check compares once frames of the student's own
camera are enrolled; the rule of the default) and *photo registration* (photo pairs
too: a registration photo alone). The **test** half (every person of the eval suite,
and others) reports FMR and FNMR at each, at the default and at the previous default,
with Wilson 95 % intervals, per kind of pair and per group (women / men; darker skin
where labelled).

The pairs, their rates and the threshold rule are ``bench.identity_pairs`` (pure);
this module embeds the faces in the process pool, measures, plots and prints.

Pairs share faces, so they are not independent: the intervals over pairs are
narrower than the truth. The per-person line (people of the test half with at least
one false non-match) counts independent units.
"""

from __future__ import annotations

import argparse
import io
import json
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import av
from PIL import Image

from bench.identity_pairs import (
    BUDGET,
    RULE,
    RULES,
    Sample,
    choose_threshold,
    curve,
    distance_summary,
    pairs,
    report_at,
)
from proctoring.analysis.faces import detect_faces, warm_up
from proctoring.settings import Settings
from producer.people import PEOPLE, Person
from producer.rendering import video_frames
from producer.scenario import VideoSegment

__all__ = ["PLOT", "PREVIOUS_DEFAULT", "RESULTS", "embed", "measure", "plot"]

_SIZE = (640, 480)
_FPS = 1
_WORKERS = 2
PREVIOUS_DEFAULT = 0.55
"""The default before this measurement (chosen on one impostor pair; docs/operations.md)."""
RESULTS = Path(__file__).resolve().parent / "results" / "identity.json"
PLOT = Path(__file__).resolve().parents[1] / "docs" / "identity-curve.png"


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
            half: {k: distance_summary(v) for k, v in p.distances.items()}
            for half, p in halves.items()
        },
        "development": {
            rule: report_at(halves["development"], t) for rule, t in thresholds.items()
        },
        "test": {
            **{rule: report_at(halves["test"], t) for rule, t in thresholds.items()},
            "default": report_at(halves["test"], default),
            "previous default": report_at(halves["test"], PREVIOUS_DEFAULT),
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

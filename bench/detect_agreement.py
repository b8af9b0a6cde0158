"""``python -m bench.detect_agreement``: the faces the ``regions`` detection finds against ``full``.

The local engine's face detection (``proctoring.analysis.faces.find_faces``) changed from
dlib's HOG detector on the whole frame upsampled 2x (``full``, upsample 1) to a native-size
pass with an upsampled pass only where a small face may be (``regions``). This measures
both on the same frames, through the engine's whole CPU side (``describe_frame``, faces
plan: detection, 68 landmarks, pose, gaze, quality):

- **the eval suite**: every chunk of ``proctor eval``'s default suite (``producer.people``
  sessions of one half, rendered by ``producer.rendering`` as ``cli.eval_run`` does), its
  analysed frame (``Settings.frame_position``) as JPEG, identical frames counted once;
- **the scenes**: every photo of ``../shared/data/scenes`` and ``objects`` (groups, people
  with phones), once as the photo (longer side at most 1024) and once as a camera shows
  it (one chunk of a photo segment, 640x480).

A face of one detection is the other's when their boxes share over half of the smaller
(``faces._same_face``). Per face size (the ``full`` box's side, or the ``regions`` box's
for a face only it finds) it reports the faces both find, those ``full`` finds and
``regions`` misses, and the reverse; the scale of ``regions``' box against ``full``'s for
the same face (the identity schedule treats a change within 1.5x as no change); and the
frames per second of each from the CPU time of the same frames. It exits non-zero when
``regions`` misses a face of the eval suite that ``full`` finds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.harness import RESULTS, LoadGuard, add_load_arguments
from proctoring.analysis.describe import describe_frame
from proctoring.analysis.faces import Detection
from proctoring.settings import Settings

__all__ = ["Tally", "compare", "main", "scene_frames", "suite_frames"]

Box = tuple[int, int, int, int]
SIZES = ((0, 50), (50, 80), (80, 120), (120, 200), (200, 100_000))
_PHOTOS = ("*.jpg", "*.jpeg", "*.png")


def _bucket(side: int) -> str:
    for low, high in SIZES:
        if low <= side < high:
            return f"{low}-{high}" if high < 100_000 else f">={low}"
    return "?"


def _session_frames(
    entry: dict[str, Any], data_dir: str, position: Literal["first", "middle"]
) -> list[tuple[str, bytes]]:
    """Process-pool job: one eval session's analysed frames, as the consumer extracts them."""
    from proctoring.frames import extract_frame
    from producer.rendering import render_chunks
    from producer.scenario import scenario_from_mapping

    scenario = scenario_from_mapping(entry["scenario"], name=entry["name"], data_dir=Path(data_dir))
    return [
        (f"{entry['name']}#{i}", extract_frame(chunk.data, position=position).jpeg)
        for i, chunk in enumerate(render_chunks(scenario, seconds=5.0))
    ]


def suite_frames(
    data_dir: Path, half: Literal["test", "development", "all"], workers: int
) -> list[tuple[str, bytes]]:
    """The eval suite's analysed frames, each distinct JPEG once (named by its first chunk)."""
    from producer.people import eval_sessions

    position = Settings().frame_position
    entries = eval_sessions(half, data_dir)
    seen: dict[str, tuple[str, bytes]] = {}
    with ProcessPoolExecutor(workers) as pool:
        jobs = [pool.submit(_session_frames, e, str(data_dir), position) for e in entries]
        for job in jobs:
            for name, jpeg in job.result():
                seen.setdefault(hashlib.sha1(jpeg).hexdigest(), (name, jpeg))
    return list(seen.values())


def scene_frames(data_dir: Path) -> list[tuple[str, bytes]]:
    """Every scene and object photo as the file, and as one camera frame of it (640x480)."""
    from proctoring.frames import extract_frame
    from producer.rendering import render_chunks
    from producer.scenario import scenario_from_mapping

    photos = sorted(
        path
        for folder in ("scenes", "objects")
        for pattern in _PHOTOS
        for path in (data_dir / folder).rglob(pattern)
    )
    frames = []
    for photo in photos:
        name = str(photo.relative_to(data_dir))
        frames.append((name, photo.read_bytes()))
        scenario = scenario_from_mapping(
            {"segments": [{"photo": str(photo), "seconds": 1}]}, name=name, data_dir=data_dir
        )
        chunk = next(iter(render_chunks(scenario, seconds=5.0)))
        frames.append((f"{name} (camera 640x480)", extract_frame(chunk.data).jpeg))
    return frames


def _same(a: Box, b: Box) -> bool:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(right - left, 0) * max(bottom - top, 0)
    return inter > 0.5 * min(a[2] * a[3], b[2] * b[3])


@dataclass
class Tally:
    """Faces found by ``full`` (old) and ``regions`` (new) on a set of frames."""

    frames: int = 0
    both: dict[str, int] = field(default_factory=dict)
    only_full: dict[str, int] = field(default_factory=dict)
    only_regions: dict[str, int] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)
    """``frame: box`` of each face ``full`` finds and ``regions`` does not."""
    added: list[str] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    """Per face both find: side of the regions box / side of the full box."""
    cpu_seconds: dict[str, float] = field(default_factory=lambda: {"full": 0.0, "regions": 0.0})

    def add(self, name: str, full: Iterable[Box], regions: Iterable[Box]) -> None:
        self.frames += 1
        new = list(regions)
        for box in full:
            twin = next((b for b in new if _same(box, b)), None)
            key = _bucket(max(box[2], box[3]))
            if twin is None:
                self.only_full[key] = self.only_full.get(key, 0) + 1
                self.missed.append(f"{name}: {box}")
            else:
                new.remove(twin)
                self.both[key] = self.both.get(key, 0) + 1
                self.scales.append(max(twin[2], twin[3]) / max(box[2], box[3], 1))
        for box in new:
            key = _bucket(max(box[2], box[3]))
            self.only_regions[key] = self.only_regions.get(key, 0) + 1
            self.added.append(f"{name}: {box}")

    def fps(self, detection: Detection) -> float:
        return self.frames / self.cpu_seconds[detection] if self.cpu_seconds[detection] else 0.0

    def report(self) -> dict[str, Any]:
        rows = [
            {
                "face_side_px": _bucket(low),
                "both": self.both.get(_bucket(low), 0),
                "full_only": self.only_full.get(_bucket(low), 0),
                "regions_only": self.only_regions.get(_bucket(low), 0),
            }
            for low, _ in SIZES
        ]
        return {
            "frames": self.frames,
            "faces_full": sum(self.both.values()) + sum(self.only_full.values()),
            "faces_regions": sum(self.both.values()) + sum(self.only_regions.values()),
            "by_size": rows,
            "missed_by_regions": self.missed,
            "found_by_regions_only": self.added,
            "box_scale_regions_vs_full": {
                "min": round(min(self.scales), 3) if self.scales else None,
                "max": round(max(self.scales), 3) if self.scales else None,
            },
            "fps_one_core": {d: round(self.fps(d), 1) for d in ("full", "regions")},
            "cpu_ms_per_frame": {
                d: round(1000 / self.fps(d), 1) if self.fps(d) else None
                for d in ("full", "regions")
            },
        }


def compare(frames: Iterable[tuple[str, bytes]]) -> Tally:
    """Run ``describe_frame`` (faces plan) with each detection on every frame."""
    tally = Tally()
    for name, jpeg in frames:
        boxes: dict[str, list[Box]] = {}
        for detection in ("full", "regions"):
            started = time.process_time()
            found = describe_frame(jpeg, identity="no", detection=detection)
            tally.cpu_seconds[detection] += time.process_time() - started
            boxes[detection] = [face.box for face in found.faces]
        tally.add(name, boxes["full"], boxes["regions"])
    return tally


def _print(title: str, report: dict[str, Any]) -> None:
    print(
        f"\n{title}: {report['frames']} frames, faces full {report['faces_full']}, "
        f"regions {report['faces_regions']}"
    )
    print(f"  {'face side px':>12} {'both':>6} {'full only':>10} {'regions only':>13}")
    for row in report["by_size"]:
        print(
            f"  {row['face_side_px']:>12} {row['both']:>6} {row['full_only']:>10} "
            f"{row['regions_only']:>13}"
        )
    scale = report["box_scale_regions_vs_full"]
    print(f"  box scale regions/full: {scale['min']}-{scale['max']}")
    fps, ms = report["fps_one_core"], report["cpu_ms_per_frame"]
    print(
        f"  frames/s on one core (CPU time): full {fps['full']} ({ms['full']} ms), "
        f"regions {fps['regions']} ({ms['regions']} ms)"
    )
    for line in report["missed_by_regions"]:
        print(f"  MISSED by regions: {line}")
    for line in report["found_by_regions_only"]:
        print(f"  found by regions only: {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.detect_agreement", description=__doc__)
    parser.add_argument("--half", choices=["test", "development", "all"], default="test")
    parser.add_argument("--out", type=Path, default=RESULTS / "detect_agreement.json")
    parser.add_argument("--workers", type=int, default=2, help="processes that render the suite")
    add_load_arguments(parser)
    args = parser.parse_args(argv)
    data_dir = Settings().data_dir
    guard = LoadGuard.from_arguments(args)
    guard.start()  # refuses a busy machine unless --busy-ok
    started = time.monotonic()
    suite = compare(suite_frames(data_dir, args.half, args.workers)).report()
    _print(f"eval suite ({args.half} half)", suite)
    scenes = compare(scene_frames(data_dir)).report()
    _print("scenes and objects", scenes)
    load = guard.finish()  # refuses when the machine was busy, unless --busy-ok
    document = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed_seconds": round(time.monotonic() - started, 1),
        "half": args.half,
        "load": load,
        "eval_suite": suite,
        "scenes": scenes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    if suite["missed_by_regions"]:
        print("FAILED: regions misses faces of the eval suite that full finds", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

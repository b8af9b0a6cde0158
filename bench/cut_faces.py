"""``python -m bench.cut_faces``: the cut-face share (``quality.cut_share``) of every face.

The local engine calls a face cut (``partial``, FACE_NOT_CLEAR) when its box or landmarks
reach beyond the frame, or when more than ``quality.CUT_SHARE`` of its area lies beyond
the picture (the frame without black bars). This measures the share with both detections
(``full``, ``regions``) on:

- every photo of ``../shared/data`` (faces, identities, scenes, objects, talking), as the
  file (longer side at most 1024) and as the eval's camera shows it (one 640x480 chunk of a
  photo segment, its first and its middle frame);
- every recording, two frames a second, letterboxed on the camera's 640x480 canvas;
- with ``--half development`` (or ``test``, ``all``) the analysed frames of that half of
  ``proctor eval``'s people suite (middle and first frame; ``bench.detect_agreement``).

Faces are grouped as: the face half out of the picture (``faces/obama_partial_face.jpg``);
faces at the frame's border (box or landmarks beyond it: cut by the first rule whatever
the share); face-api.js's 150 px crops (cut at the chin, not camera footage); and whole
faces, the rest. It prints the share of the half-out face per detection and frame, the
largest shares among whole faces, and exits non-zero when the half-out face is not over
the limit or a whole face is. The limit is chosen on the development half only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bench.harness import RESULTS
from proctoring.settings import Settings

__all__ = ["main"]

CUT = "faces/obama_partial_face.jpg"
_PHOTOS = (".jpg", ".jpeg", ".png")
_FOLDERS = ("faces", "identities", "scenes", "objects", "talking")
_CROPS = ("amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart")


def _camera(photo: Path, data_dir: Path) -> list[tuple[str, bytes]]:
    from proctoring.frames import extract_frame
    from producer.rendering import render_chunks
    from producer.scenario import scenario_from_mapping

    scenario = scenario_from_mapping(
        {"segments": [{"photo": str(photo), "seconds": 5}]}, name="photo", data_dir=data_dir
    )
    chunk = next(iter(render_chunks(scenario, seconds=5.0)))
    return [
        (f"camera {position}", extract_frame(chunk.data, position=position).jpeg)
        for position in ("first", "middle")
    ]


def _recording(path: Path) -> list[tuple[str, bytes]]:
    import av

    from producer.rendering import video_frames
    from producer.scenario import VideoSegment

    with av.open(str(path)) as container:
        seconds = float(container.duration or 0) / 1e6
    frames = []
    count = max(1, int(seconds * 2))
    for i, frame in enumerate(
        video_frames(VideoSegment(video=path), count, fps=2, size=(640, 480))
    ):
        buffer = io.BytesIO()
        frame.to_image().save(buffer, "JPEG", quality=90)
        frames.append((f"at {i / 2:.1f} s", buffer.getvalue()))
    return frames


def _data_frames(path: Path, data_dir: Path) -> list[tuple[str, str, bytes]]:
    """Process-pool job: the frames of one file of the data, (name, kind, JPEG/PNG)."""
    name = str(path.relative_to(data_dir))
    if path.suffix.lower() == ".mp4":
        return [(f"{name} {at}", "recording", jpeg) for at, jpeg in _recording(path)]
    camera = [(f"{name} ({how})", "camera", jpeg) for how, jpeg in _camera(path, data_dir)]
    return [(name, "file", path.read_bytes()), *camera]


def _shares(item: tuple[str, str, bytes]) -> list[dict[str, Any]]:
    """Process-pool job: every face of one frame with each detection, and its share."""
    from proctoring.analysis.faces import Detection, _decode, _models, find_faces
    from proctoring.analysis.quality import cut_share, picture

    name, kind, image = item
    pixels = _decode(image, max_side=1024)
    height, width = pixels.shape[:2]
    bounds = picture(pixels)
    rows = []
    detections: tuple[Detection, ...] = ("full", "regions")
    for detection in detections:
        for rectangle in find_faces(pixels, detection=detection):
            shape = _models().landmarks68(pixels, rectangle)
            points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], float)
            border = bool(
                rectangle.left() < 0
                or rectangle.top() < 0
                or rectangle.right() + 1 > width
                or rectangle.bottom() + 1 > height
                or (points < 2).any()
                or (points[:, 0] > width - 3).any()
                or (points[:, 1] > height - 3).any()
            )
            rows.append(
                {
                    "frame": name,
                    "kind": kind,
                    "detection": detection,
                    "side": int(rectangle.width()),
                    "group": _group(name, border),
                    "share": round(cut_share(points, bounds), 4),
                }
            )
    return rows


def _group(name: str, border: bool) -> str:
    if name.startswith(CUT):
        return "half out"
    if border:
        return "at the frame's border"
    if "faceapijs/examples/images/" in name and Path(name.split(" ")[0]).parent.name in _CROPS:
        return "face-api.js crop"
    return "whole"


def _suite(
    data_dir: Path, half: Literal["test", "development", "all"]
) -> list[tuple[str, str, bytes]]:
    from bench.detect_agreement import suite_frames

    frames = []
    for position in ("middle", "first"):
        os.environ["PROCTOR_FRAME_POSITION"] = position  # suite_frames reads the setting
        frames += [
            (f"{n} ({position})", f"{half} half", j) for n, j in suite_frames(data_dir, half, 2)
        ]
    return frames


def main(argv: list[str] | None = None) -> int:
    from proctoring.analysis.quality import CUT_SHARE

    parser = argparse.ArgumentParser(prog="python -m bench.cut_faces", description=__doc__)
    parser.add_argument("--half", choices=["test", "development", "all"], default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "cut_faces.json")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    data_dir = Settings().data_dir.resolve()
    started = time.monotonic()
    files = sorted(
        p
        for folder in _FOLDERS
        for p in (data_dir / folder).rglob("*")
        if p.suffix.lower() in _PHOTOS
    ) + sorted(data_dir.rglob("*.mp4"))
    with ProcessPoolExecutor(args.workers) as pool:
        frames = [
            f for found in pool.map(_data_frames, files, [data_dir] * len(files)) for f in found
        ]
        if args.half:
            frames += _suite(data_dir, args.half)
        rows = [row for found in pool.map(_shares, frames, chunksize=4) for row in found]
    by_group: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_group.setdefault(row["group"], []).append(row)
    whole = sorted(by_group.get("whole", []), key=lambda r: -r["share"])
    cut = by_group.get("half out", [])
    print(f"{len(frames)} frames, {len(rows)} faces (both detections); limit {CUT_SHARE}")
    for group, members in sorted(by_group.items()):
        print(f"  {group}: {len(members)} faces, share at most {max(r['share'] for r in members)}")
    for row in cut:
        print(f"  half out: {row['frame']} {row['detection']}: {row['share']}")
    for kind in sorted({r["kind"] for r in whole}):
        top = next(r for r in whole if r["kind"] == kind)
        print(f"  whole, {kind}: at most {top['share']} ({top['frame']}, {top['detection']})")
    for row in whole[:5]:
        print(f"  largest whole: {row['share']} {row['frame']} {row['detection']} {row['side']} px")
    document = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed_seconds": round(time.monotonic() - started, 1),
        "limit": CUT_SHARE,
        "faces": len(rows),
        "groups": {
            g: {"faces": len(m), "max_share": max(r["share"] for r in m)}
            for g, m in by_group.items()
        },
        "half_out": cut,
        "largest_whole": whole[:10],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"written to {args.out}")
    failed = [r for r in cut if r["share"] <= CUT_SHARE and r["kind"] == "camera"]
    failed += [r for r in whole if r["share"] > CUT_SHARE]
    for row in failed:
        print(
            f"FAILED: {row['group']} {row['frame']} {row['detection']}: {row['share']}",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bench.face_change``: how far a face's crop moves, same person or another.

The schedule checks identity again when a face's crop (``likeness.face_thumbnail``)
differs from the one at the last identity check by more than ``face_change_above``
grey levels (``likeness.face_difference``). This measures that difference on the
people of ``../shared/data``, split by person into two halves:

- **same person moving**: two frames of one recording, 1 s or more apart (up to the
  recording's length: the reference is the last check, up to ``identity_every``
  chunks back);
- **someone else**: the main faces of two different people (recordings' frames and
  photos).

Every frame goes through the pipeline's own path: rendered on the 640x480 canvas as a
scenario renders it, JPEG, then ``describe_frame`` (the local engine's faces and
crops). The threshold is chosen on the **development** half only: the largest value
below which every different-person pair of that half still falls at least
``_SAFETY`` times over (a swap must never be missed; a needless re-check only costs
one SearchFacesByImage). The **held-out** half (every person of the eval suite, and
others) reports how that threshold does on people it was not chosen on.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from proctoring.analysis.describe import describe_frame
from proctoring.analysis.likeness import (
    _COLOUR_SCALE,
    _LAYOUT_SCALE,
    FACE_CHANGE_ABOVE,
    _face_parts,
)
from producer import people
from producer.rendering import paste, photo_pixels, video_frames
from producer.scenario import VideoSegment

__all__ = ["DEVELOPMENT", "HELD_OUT", "measure"]

_SIZE = (640, 480)
_SAFETY = 1.5
"""The chosen threshold is the smallest different-person difference of the development
half divided by this: room for people who look more alike than any pair measured."""

DEVELOPMENT = people.files("development", footage_only=True)
HELD_OUT = people.files("test", footage_only=True)
"""person -> recordings (sampled at 1 frame/s) and photos, by half (``producer.people``):
the people whose pictures are camera footage (a re-check compares camera frames)."""

Sample = tuple[str, str, float, bytes]
"""(person, source file, second in the recording or -1 for a photo, main face's crop)."""


def _jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _main_crop(jpeg: bytes) -> bytes | None:
    found = describe_frame(jpeg, identity="no")
    if not found.faces:
        return None
    boxes = sorted(f.box for f in found.faces)
    main = max(range(len(boxes)), key=lambda i: boxes[i][2] * boxes[i][3])
    return found.face_thumbs[main]


def _samples(data: Path, people: dict[str, dict[str, list[str]]]) -> list[Sample]:
    samples: list[Sample] = []
    for person, files in people.items():
        for video in files.get("videos", []):
            segment = VideoSegment(video=data / video)
            with av.open(str(segment.video)) as container:
                seconds = int(float(container.duration or 0) / av.time_base)
            frames = video_frames(segment, max(seconds, 1), fps=1, size=_SIZE)
            for second, frame in enumerate(frames):
                crop = _main_crop(_jpeg(frame.to_ndarray(format="rgb24")))
                if crop is not None:
                    samples.append((person, video, float(second), crop))
        for photo in files.get("photos", []):
            crop = _main_crop(_jpeg(paste(photo_pixels(data / photo, _SIZE), _SIZE)))
            if crop is not None:
                samples.append((person, photo, -1.0, crop))
    return samples


def _raw(a: bytes, b: bytes) -> tuple[float, float]:
    """(layout: mean absolute grey difference, colour: L1 of the histograms) of two crops."""
    first, second = _face_parts(a), _face_parts(b)
    assert first is not None and second is not None
    return float(np.abs(first[0] - second[0]).mean()), float(np.abs(first[1] - second[1]).sum())


def _pairs(samples: list[Sample]) -> dict[str, np.ndarray]:
    """(layout, colour) of same-recording frames 1 s+ apart, same-person photos, others."""
    kinds: dict[str, list[tuple[float, float]]] = {
        "same_person_moving": [],
        "same_person_other_source": [],
        "others": [],
    }
    for a, b in itertools.combinations(samples, 2):
        if a[0] != b[0]:
            kind = "others"
        elif a[1] == b[1] and a[2] >= 0 and a[2] != b[2]:
            kind = "same_person_moving"
        elif a[1] != b[1]:
            kind = "same_person_other_source"
        else:
            continue
        kinds[kind].append(_raw(a[3], b[3]))
    return {k: np.asarray(v, dtype=np.float64).reshape(-1, 2) for k, v in kinds.items()}


def _combined(raw: np.ndarray, layout_scale: float, colour_scale: float) -> np.ndarray:
    combined: np.ndarray = (raw[:, 0] / layout_scale + raw[:, 1] / colour_scale) / 2
    return combined


def _summary(values: np.ndarray, threshold: float) -> dict[str, Any]:
    if not len(values):
        return {"pairs": 0}
    return {
        "pairs": len(values),
        "min": round(float(values.min()), 3),
        "p5": round(float(np.percentile(values, 5)), 3),
        "median": round(float(np.median(values)), 3),
        "p95": round(float(np.percentile(values, 95)), 3),
        "max": round(float(values.max()), 3),
        "above_threshold": round(float((values > threshold).mean()), 3),
    }


def measure(data: Path) -> dict[str, Any]:
    """Both halves measured; scales and threshold chosen on the development half."""
    development = _pairs(_samples(data, DEVELOPMENT))
    held_out = _pairs(_samples(data, HELD_OUT))
    layout_scale = float(development["others"][:, 0].min())
    colour_scale = float(development["others"][:, 1].min())
    chosen = float(_combined(development["others"], layout_scale, colour_scale).min()) / _SAFETY
    code = (_LAYOUT_SCALE, _COLOUR_SCALE, FACE_CHANGE_ABOVE)

    def halves(scales: tuple[float, float, float]) -> dict[str, Any]:
        return {
            name: {
                kind: _summary(_combined(raw, scales[0], scales[1]), scales[2])
                for kind, raw in half.items()
            }
            for name, half in (("development", development), ("held_out", held_out))
        }

    return {
        "chosen": {
            "layout_scale": round(layout_scale, 2),
            "colour_scale": round(colour_scale, 4),
            "threshold": round(chosen, 3),
            "rule": f"scales: the closest two strangers of the development half, per view; "
            f"threshold: the closest two strangers combined / {_SAFETY}",
        },
        "in_code": {"layout_scale": code[0], "colour_scale": code[1], "threshold": code[2]},
        "figures_with_the_code_values": halves(code),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    report = measure(args.data)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

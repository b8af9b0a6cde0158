"""The local object detector: an ONNX model the operator points to, if any.

No detection model ships with this project or with any package it depends
on, and nothing is downloaded at run time. With ``PROCTOR_OBJECT_MODEL``
unset the local engine reports objects and people as *unavailable*, and the
object rules say so in every result instead of passing silently.

The model contract (what ``onnxruntime`` is given and must return):

- input: one float32 tensor ``(1, 3, H, W)``, RGB scaled to 0..1; ``H`` and
  ``W`` are read from the model (640 each where they are symbolic); the frame
  is resized to them without letterboxing;
- output: its first output, ``(N, 6)`` or ``(1, N, 6)``, one row per
  detection after non-maximum suppression: ``x1, y1, x2, y2`` normalised to
  0..1, ``score`` 0..1, ``class`` index into the labels.

Labels are the class names the model was trained with, one per line in
``PROCTOR_OBJECT_LABELS`` (COCO's 80 names when unset). They are mapped to
the names Rekognition's DetectLabels uses (``cell phone`` -> ``Mobile
Phone``), so one policy's prohibited labels serve both engines.

Errors::

    ProctoringError
     └── DetectorError      the model file is missing, unreadable or has another contract
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from proctoring.analysis.base import DetectedObject
from proctoring.errors import ProctoringError

__all__ = [
    "COCO_LABELS",
    "REKOGNITION_NAMES",
    "DetectorConfig",
    "DetectorError",
    "check_model",
    "detect_objects",
    "load_labels",
]

COCO_LABELS: tuple[str, ...] = tuple(
    name.replace("_", " ")
    for name in [
        "person",
        "bicycle",
        "car",
        "motorcycle",
        "airplane",
        "bus",
        "train",
        "truck",
        "boat",
        "traffic_light",
        "fire_hydrant",
        "stop_sign",
        "parking_meter",
        "bench",
        "bird",
        "cat",
        "dog",
        "horse",
        "sheep",
        "cow",
        "elephant",
        "bear",
        "zebra",
        "giraffe",
        "backpack",
        "umbrella",
        "handbag",
        "tie",
        "suitcase",
        "frisbee",
        "skis",
        "snowboard",
        "sports_ball",
        "kite",
        "baseball_bat",
        "baseball_glove",
        "skateboard",
        "surfboard",
        "tennis_racket",
        "bottle",
        "wine_glass",
        "cup",
        "fork",
        "knife",
        "spoon",
        "bowl",
        "banana",
        "apple",
        "sandwich",
        "orange",
        "broccoli",
        "carrot",
        "hot_dog",
        "pizza",
        "donut",
        "cake",
        "chair",
        "couch",
        "potted_plant",
        "bed",
        "dining_table",
        "toilet",
        "tv",
        "laptop",
        "mouse",
        "remote",
        "keyboard",
        "cell_phone",
        "microwave",
        "oven",
        "toaster",
        "sink",
        "refrigerator",
        "book",
        "clock",
        "vase",
        "scissors",
        "teddy_bear",
        "hair_drier",
        "toothbrush",
    ]
)
"""The 80 class names of COCO-trained detectors, in their usual order."""

REKOGNITION_NAMES: dict[str, str] = {
    "person": "Person",
    "cell phone": "Mobile Phone",
    "mobile phone": "Mobile Phone",
    "phone": "Mobile Phone",
    "book": "Book",
    "laptop": "Laptop",
    "tv": "Monitor",
    "keyboard": "Keyboard",
    "mouse": "Mouse",
    "remote": "Remote Control",
    "headphones": "Headphones",
    "headset": "Headphones",
    "earphones": "Headphones",
    "tablet": "Tablet Computer",
    "tablet computer": "Tablet Computer",
}
"""Detector class names -> Rekognition label names; others are title-cased."""

_DEFAULT_SIDE = 640


class DetectorError(ProctoringError):
    """The ONNX model cannot be used (missing file, wrong input or output shape)."""


@dataclass(frozen=True)
class DetectorConfig:
    """Where the model is and how to read its classes (picklable, for the pool)."""

    model: str
    labels: tuple[str, ...] = COCO_LABELS
    min_confidence: float = 50.0
    """0-100; detections below are dropped."""


def load_labels(path: Path | None) -> tuple[str, ...]:
    """Class names, one per line (blank lines dropped); COCO's when ``path`` is None."""
    if path is None:
        return COCO_LABELS
    try:
        names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    except OSError as exc:
        raise DetectorError(f"cannot read the object labels {path}: {exc}") from exc
    if not names:
        raise DetectorError(f"the object labels file {path} is empty")
    return names


def check_model(config: DetectorConfig) -> None:
    """Load the model once here, so a wrong path or contract fails at start-up (DetectorError)."""
    _session(config.model)


def rekognition_name(name: str) -> str:
    """The Rekognition label for a detector class name."""
    key = name.strip().lower().replace("_", " ")
    return REKOGNITION_NAMES.get(key, key.title())


def detect_objects(pixels: np.ndarray, config: DetectorConfig) -> tuple[DetectedObject, ...]:
    """Run the model on an RGB frame; every detection above ``min_confidence``, mapped."""
    session, input_name, (height, width) = _session(config.model)
    image = Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR)
    tensor = (np.asarray(image, dtype=np.float32) / 255.0).transpose(2, 0, 1)[None]
    outputs = session.run(None, {input_name: tensor})
    rows = np.asarray(outputs[0], dtype=np.float32)
    if rows.ndim == 3 and rows.shape[0] == 1:
        rows = rows[0]
    if rows.ndim != 2 or (rows.size and rows.shape[1] != 6):
        raise DetectorError(
            f"{config.model}: the first output has shape {tuple(rows.shape)}, expected (N, 6) "
            "rows of x1, y1, x2, y2, score, class"
        )
    frame_h, frame_w = pixels.shape[:2]
    found = []
    for x1, y1, x2, y2, score, cls in rows.tolist():
        confidence = float(score) * 100.0
        index = round(cls)
        if confidence < config.min_confidence or not 0 <= index < len(config.labels):
            continue
        left = round(max(0.0, min(x1, x2)) * frame_w)
        top = round(max(0.0, min(y1, y2)) * frame_h)
        right = round(min(1.0, max(x1, x2)) * frame_w)
        bottom = round(min(1.0, max(y1, y2)) * frame_h)
        found.append(
            DetectedObject(
                label=rekognition_name(config.labels[index]),
                confidence=round(confidence, 1),
                box=(left, top, max(right - left, 0), max(bottom - top, 0)),
            )
        )
    return tuple(found)


@functools.cache
def _session(model: str) -> tuple[Any, str, tuple[int, int]]:
    """Load the model once per process; its input name and (H, W)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise DetectorError(
            "PROCTOR_OBJECT_MODEL is set but onnxruntime is not installed; install the "
            "'objects' extra"
        ) from exc
    if not Path(model).is_file():
        raise DetectorError(f"the object model {model} does not exist")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # one process-pool worker, one core
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(
            model, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise DetectorError(f"cannot load the object model {model}: {exc}") from exc
    (first,) = session.get_inputs()[:1]
    shape = list(first.shape)
    if len(shape) != 4 or shape[1] not in (3, "3"):
        raise DetectorError(f"{model}: input {first.name} has shape {shape}, expected (1, 3, H, W)")
    height = shape[2] if isinstance(shape[2], int) else _DEFAULT_SIDE
    width = shape[3] if isinstance(shape[3], int) else _DEFAULT_SIDE
    return session, first.name, (height, width)

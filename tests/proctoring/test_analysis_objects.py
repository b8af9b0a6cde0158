"""The ONNX object detector path, exercised with a tiny model built here that outputs fixed
detections: the mapping to Rekognition's label names, thresholds, boxes, people counted."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from proctoring.analysis.describe import describe_frame
from proctoring.analysis.objects import (
    COCO_LABELS,
    DetectorConfig,
    DetectorError,
    detect_objects,
    load_labels,
)

onnx = pytest.importorskip("onnx", reason="the onnx package (dev extra) builds the test model")
pytest.importorskip("onnxruntime", reason="onnxruntime (the 'objects' extra) is not installed")

PERSON, PHONE, BOOK = COCO_LABELS.index("person"), COCO_LABELS.index("cell phone"), 73
DETECTIONS = [
    [0.10, 0.20, 0.30, 0.60, 0.91, PERSON],
    [0.55, 0.10, 0.95, 0.90, 0.80, PERSON],
    [0.40, 0.50, 0.50, 0.70, 0.75, PHONE],
    [0.00, 0.00, 0.10, 0.10, 0.20, BOOK],  # below the confidence threshold
]


def _model(path: Path, rows: list[list[float]], side: int = 64, batched: bool = False) -> Path:
    """A valid ONNX model: input (1, 3, side, side), output the fixed detections."""
    from onnx import TensorProto, helper

    values = np.asarray(rows, dtype=np.float32)
    if batched:
        values = values[None]
    constant = helper.make_node(
        "Constant",
        inputs=[],
        outputs=["detections"],
        value=helper.make_tensor("value", TensorProto.FLOAT, values.shape, values.ravel()),
    )
    graph = helper.make_graph(
        [constant],
        "fixed-detections",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, side, side])],
        [helper.make_tensor_value_info("detections", TensorProto.FLOAT, list(values.shape))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _frame(width: int = 200, height: int = 100) -> np.ndarray:
    return np.full((height, width, 3), 90, dtype=np.uint8)


@pytest.mark.parametrize("batched", [False, True])
def test_detections_are_mapped_to_rekognition_names_and_thresholded(
    tmp_path: Path, batched: bool
) -> None:
    config = DetectorConfig(model=str(_model(tmp_path / "m.onnx", DETECTIONS, batched=batched)))
    found = detect_objects(_frame(), config)
    assert [(o.label, o.confidence) for o in found] == [
        ("Person", 91.0),
        ("Person", 80.0),
        ("Mobile Phone", 75.0),
    ]
    assert found[2].box == (80, 50, 20, 20), "normalised boxes scaled to the frame"


def test_describe_frame_counts_people_apart_from_objects(tmp_path: Path) -> None:
    config = DetectorConfig(model=str(_model(tmp_path / "m.onnx", DETECTIONS)), min_confidence=70)
    buffer = io.BytesIO()
    Image.fromarray(_frame()).save(buffer, "JPEG")
    frame = describe_frame(buffer.getvalue(), identity="no", detector=config)
    assert frame.persons == 2
    assert [o.label for o in frame.objects or ()] == ["Mobile Phone"]
    assert describe_frame(buffer.getvalue(), identity="no").objects is None, "no model, no objects"


def test_labels_file_and_unknown_classes(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("headphones\n\ntablet\nstapler\n")
    assert load_labels(labels) == ("headphones", "tablet", "stapler")
    rows = [[0, 0, 1, 1, 0.9, 0], [0, 0, 1, 1, 0.9, 1], [0, 0, 1, 1, 0.9, 2], [0, 0, 1, 1, 0.9, 7]]
    config = DetectorConfig(
        model=str(_model(tmp_path / "m.onnx", rows)), labels=load_labels(labels)
    )
    assert [o.label for o in detect_objects(_frame(), config)] == [
        "Headphones",
        "Tablet Computer",
        "Stapler",
    ], "unknown classes are dropped, unmapped names title-cased"


def test_a_model_with_another_contract_is_refused(tmp_path: Path) -> None:
    wrong = _model(tmp_path / "wrong.onnx", [[0.1, 0.2, 0.3, 0.4]])
    with pytest.raises(DetectorError, match=r"expected \(N, 6\)"):
        detect_objects(_frame(), DetectorConfig(model=str(wrong)))
    with pytest.raises(DetectorError, match="does not exist"):
        detect_objects(_frame(), DetectorConfig(model=str(tmp_path / "missing.onnx")))
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="cannot load"):
        detect_objects(_frame(), DetectorConfig(model=str(tmp_path / "junk.onnx")))


def test_a_configured_model_is_checked_at_start_up(tmp_path: Path) -> None:
    from proctoring.analysis.engine import detector
    from proctoring.settings import Settings

    assert detector(Settings()) is None, "no model: objects unavailable"
    with pytest.raises(DetectorError, match="does not exist"):
        detector(Settings(object_model=tmp_path / "missing.onnx"))
    model = _model(tmp_path / "m.onnx", DETECTIONS)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(COCO_LABELS))
    config = detector(Settings(object_model=model, object_labels=labels, object_min_confidence=70))
    assert config is not None and config.min_confidence == 70 and config.labels == COCO_LABELS

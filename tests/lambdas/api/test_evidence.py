"""Evidence nobody can rewrite (issue 19, finding 1), end to end over HTTP.

A student whose chunks 2-4 raised NO_FACE tries to replace them with chunks showing
their face: the API refuses new forms for uploaded sequences, and the objects they
POST with the forms they still hold (S3 accepts those: a POST cannot be made
conditional) are recorded as tampering, never analysed. Results, report, alert and
the evidence frame stay byte for byte what they were.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from proctoring.aws import sync_client
from proctoring.settings import Settings
from producer.rendering import render_chunks
from producer.scenario import load_scenario
from tests.conftest import DATA, poll, require_data
from tests.lambdas.api.conftest import Service

pytestmark = pytest.mark.slow
SCENARIO = __import__("pathlib").Path(__file__).parents[3] / "producer/scenarios/leaving.yaml"


def _post(form: dict[str, Any], data: bytes) -> int:
    posted = requests.post(
        form["url"], data=form["fields"], files={"file": ("c.mp4", data, "video/mp4")}, timeout=30
    )
    return posted.status_code


def _object(settings: Settings, bucket: str, key: str, version: str | None = None) -> bytes:
    s3 = sync_client(settings, "s3")
    extra = {"VersionId": version} if version else {}
    body: bytes = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
    return body


def _evidence_state(live: Service, exam_id: str) -> dict[str, Any]:
    results = live.call("GET", f"/exams/{exam_id}/results", "proctor").json()["results"]
    report = live.call("GET", f"/exams/{exam_id}/report", "proctor").json()
    (student_report,) = report["students"]
    alerts = live.call("GET", f"/exams/{exam_id}/alerts", "proctor").json()["alerts"]
    return {
        "results": sorted(results, key=lambda r: r["chunk_id"]),
        "timeline": student_report.get("timeline", student_report.get("chunks")),
        "no_face": [a for a in alerts if a["type"] == "NO_FACE"],
    }


def test_replacing_analysed_chunks_is_refused_and_flagged_and_the_evidence_stays(
    live: Service,
) -> None:
    require_data()
    student = live.ids["student"]
    exam_id = live.exam("proctor", start=True)
    live.enrol(exam_id, "student")
    base = f"/exams/{exam_id}/students/{student}"
    photo = base64.b64encode((DATA / "faces" / "obama.jpg").read_bytes()).decode()
    assert live.call("POST", f"{base}/registration", "student", json={"photo": photo}).ok

    chunks = list(render_chunks(load_scenario(SCENARIO, data_dir=DATA)))  # 2-4: an empty room
    forms = live.call(
        "POST", f"{base}/uploads", "student",
        json={"first_sequence": 0, "count": len(chunks), "ext": "mp4", "content_type": "video/mp4"},
    ).json()["uploads"]  # fmt: skip
    for form, chunk in zip(forms, chunks, strict=True):
        assert _post(form, chunk.data) in (200, 204)
    for _ in poll("every chunk analysed and the NO_FACE alert raised", 90):
        before = _evidence_state(live, exam_id)
        if len(before["results"]) == len(chunks) and before["no_face"]:
            break
    (alert,) = before["no_face"]
    assert [r["faces"] for r in before["results"][2:5]] == [0, 0, 0]
    assert alert["frame_sha256"] and alert["chunk_sha256"]
    frames = live.settings.names.frames_bucket
    frame_before = _object(live.settings, frames, alert["frame_key"])

    # New forms for the uploaded sequences: refused.
    again = live.call(
        "POST", f"{base}/uploads", "student",
        json={"first_sequence": 2, "count": 3, "ext": "mp4", "content_type": "video/mp4"},
    )  # fmt: skip
    assert again.status_code == 409 and again.json()["reason"] == "already_uploaded"

    # The forms the student still holds: S3 (and moto) take the objects...
    face = chunks[0].data
    for form in forms[2:5]:
        assert _post(form, face) in (200, 204)
    # ...and the consumer flags each one for the proctor instead of analysing it.
    for _ in poll("each second object flagged", 90):
        alerts = live.call("GET", f"/exams/{exam_id}/alerts", "proctor").json()["alerts"]
        replaced = sorted(
            (a for a in alerts if a["type"] == "CHUNK_REPLACED"), key=lambda a: a["sequence"]
        )
        if len(replaced) == 3:
            break
    assert [a["sequence"] for a in replaced] == [2, 3, 4]
    assert all(a["severity"] == "high" and a["status"] == "open" for a in replaced)
    # the alert points at the first evidence and names the object that tried to replace it
    by_sequence = {r["sequence"]: r for r in before["results"]}
    for flagged in replaced:
        first = by_sequence[flagged["sequence"]]
        assert flagged.get("frame_key") == first.get("frame_key")  # the first's, if kept
        assert flagged["chunk_sha256"] == first["chunk_sha256"]
        assert flagged["replaced_by"]["chunk_sha256"] != first["chunk_sha256"]

    # Results, report timeline, the NO_FACE alert and its frame: byte for byte as before.
    after = _evidence_state(live, exam_id)
    assert json.dumps(after, sort_keys=True) == json.dumps(before, sort_keys=True)
    assert _object(live.settings, frames, alert["frame_key"]) == frame_before
    # the first upload of chunk 3 is still there, as the version the consumer analysed
    chunk3 = by_sequence[3]
    first_bytes = _object(
        live.settings, live.settings.names.chunks_bucket, chunk3["chunk_key"],
        chunk3["chunk_version"],
    )  # fmt: skip
    assert first_bytes == chunks[3].data
    evidence = live.call("GET", f"/exams/{exam_id}/alerts/{alert['alert_id']}/evidence", "proctor")
    assert evidence.status_code == 200
    assert requests.get(evidence.json()["url"], timeout=10).content == frame_before
    assert (
        requests.get(evidence.json()["chunk_url"], timeout=10).content
        == chunks[alert["sequence"]].data
    )

    # an errors row per second object, for whoever investigates
    dynamodb = sync_client(live.settings, "dynamodb")
    rows = dynamodb.scan(TableName=live.settings.names.errors_table)["Items"]
    reasons = [r["reason"]["S"] for r in rows if r.get("stage", {}).get("S") == "chunk"]
    assert reasons.count("second_object") == 3

    # Erasure still erases: every version of every chunk, not only the current objects.
    assert live.call("DELETE", base, "proctor").status_code == 200
    s3 = sync_client(live.settings, "s3")
    for bucket in (live.settings.names.chunks_bucket, frames):
        left = s3.list_object_versions(Bucket=bucket, Prefix=f"chunks/{exam_id}/{student}/")
        assert not left.get("Versions") and not left.get("DeleteMarkers"), bucket
    kept = s3.list_object_versions(Bucket=frames, Prefix=f"frames/{exam_id}/{student}/").get(
        "Versions", []
    )
    assert kept == []

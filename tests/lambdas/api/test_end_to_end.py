"""End to end, over HTTP: from an exam's start to the erasure of a student who left the desk.

A proctor creates and starts an exam; a student joins, consents, registers a
real photo and uploads the ``leaving`` scenario's six chunks through
presigned POSTs; the router, the consumer (exam gate on) and the forwarder
run against the emulator; the proctor gets the NO_FACE alert on the live
stream, confirms it, finds it with the decision in the JSON and CSV reports,
and erases the student: no object in any bucket and no row in any table
mentions the student afterwards, and the erasure is audited.
"""

from __future__ import annotations

import base64
import csv
import io
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
from tests.lambdas.api.test_alerts import _events

pytestmark = pytest.mark.slow
SCENARIO = __import__("pathlib").Path(__file__).parents[3] / "producer/scenarios/leaving.yaml"


def _everything_about(settings: Settings, student: str) -> list[str]:
    """Every object key and table row that mentions the student (the audit table aside)."""
    found = []
    s3 = sync_client(settings, "s3")
    for bucket in (settings.names.chunks_bucket, settings.names.frames_bucket):
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            if student in obj["Key"]:
                found.append(f"s3://{bucket}/{obj['Key']}")
    dynamodb = sync_client(settings, "dynamodb")
    names = settings.names
    for table in (
        names.results_table, names.alerts_table, names.sessions_table, names.faces_table,
        names.errors_table, names.exams_table,
    ):  # fmt: skip
        for item in dynamodb.scan(TableName=table)["Items"]:
            if student in json.dumps(item, default=str):
                found.append(f"{table}: {json.dumps(item, default=str)[:120]}")
    return found


def test_a_session_from_start_to_erasure(live: Service) -> None:
    require_data()
    student = live.ids["student"]
    exam_id = live.exam("proctor", start=True)
    live.enrol(exam_id, "student")
    base = f"/exams/{exam_id}/students/{student}"
    photo, *frames = (
        base64.b64encode((DATA / "faces" / name).read_bytes()).decode()
        for name in ("obama.jpg", "obama2.jpg", "obama-480p.jpg")
    )
    registered = live.call(
        "POST", f"{base}/registration", "student", json={"photo": photo, "frames": frames}
    )
    assert registered.json()["frames_enrolled"] == 2, "the camera frames are kept beside the photo"

    chunks = list(render_chunks(load_scenario(SCENARIO, data_dir=DATA)))
    stream = live.call("GET", f"/exams/{exam_id}/alerts/stream", "proctor", stream=True, timeout=90)
    events = _events(stream)
    forms = live.call(
        "POST", f"{base}/uploads", "student",
        json={"first_sequence": 0, "count": len(chunks), "ext": "mp4", "content_type": "video/mp4"},
    ).json()["uploads"]  # fmt: skip
    for form, chunk in zip(forms, chunks, strict=True):
        posted = requests.post(
            form["url"], data=form["fields"],
            files={"file": ("chunk.mp4", chunk.data, "video/mp4")}, timeout=30,
        )  # fmt: skip
        assert posted.status_code in (200, 204), posted.text

    alert_event = next(e for e in events if e["event"] == "alert")
    stream.close()
    alert = json.loads(alert_event["data"])["alert"]
    assert (alert["type"], alert["student_id"]) == ("NO_FACE", student)

    review = live.call(
        "POST", f"/exams/{exam_id}/alerts/{alert['alert_id']}/review", "proctor",
        json={"decision": "confirm", "note": "left the desk for 15 s"},
    )  # fmt: skip
    assert review.json()["status"] == "confirmed"

    for _ in poll("every chunk has its result and every alert its message", 90):
        results = live.call("GET", f"/exams/{exam_id}/results", "proctor").json()["results"]
        alerts = live.call("GET", f"/exams/{exam_id}/alerts", "proctor").json()["alerts"]
        messages = live.call("GET", f"{base}/messages", "proctor").json()["messages"]
        posted_alerts = [m for m in messages if m["kind"] == "alert"]
        if len(results) == len(chunks) and len(posted_alerts) == len(alerts):
            break
    assert {r["status"] for r in results} == {"ok"}

    report: dict[str, Any] = live.call("GET", f"/exams/{exam_id}/report", "proctor").json()
    (row,) = report["students"]
    assert row["chunks"] == len(chunks) and row["analysed"] == len(chunks)
    reported = next(a for a in row["alerts"] if a["alert_id"] == alert["alert_id"])
    assert reported["status"] == "confirmed"
    assert reported["reviews"][-1]["note"] == "left the desk for 15 s"
    sheet = live.call("GET", f"/exams/{exam_id}/report.csv", "proctor")
    assert sheet.headers["Content-Type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(sheet.text)))
    assert [line["decision"] for line in lines if line["alert_id"] == alert["alert_id"]] == [
        "confirm"
    ]
    assert sum(1 for line in lines if line["row"] == "chunk") == len(chunks)

    everything = _everything_about(live.settings, student)
    frames = [k for k in everything if k.startswith(f"s3://{live.settings.names.frames_bucket}/")]
    # the registration's photo and frame, the first chunk's and the alert's, one in six more
    assert len(frames) >= 4
    erased = live.call("DELETE", base, "proctor")
    assert erased.status_code == 200, erased.text
    deleted = erased.json()["deleted"]
    assert deleted["chunks"] == len(chunks) and deleted["frames"] == len(frames)
    assert deleted["results"] == len(chunks) and deleted["faces"] == 1
    assert _everything_about(live.settings, student) == []
    trail = live.call("GET", f"/exams/{exam_id}/audit", "proctor").json()
    assert trail["verification"]["verified"], trail["verification"]
    actions = [r["action"] for r in trail["records"]]
    assert actions == ["registration", "uploads_issued", "review", "erasure"]
    # the report carried the heads of its day: the review, which the erasure's record follows
    assert report["audit"]["verified"] and report["audit"]["records"] == 3
    assert report["audit"]["chains"] == {f"student#{student}": trail["records"][2]["hash"]}
    assert lines[-1]["row"] == "audit" and lines[-1]["note"] == report["audit"]["head"]
    audit = trail["records"][-1]  # the erasure comes last; the chain outlives it
    assert (audit["action"], audit["student_id"], audit["by"]) == (
        "erasure", student, live.ids["proctor"],
    )  # fmt: skip
    assert audit["deleted"] == deleted

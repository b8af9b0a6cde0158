"""The exam's audit log through the local server: what goes into it, and the report that
carries its head and says when it no longer verifies."""

from __future__ import annotations

import csv
import io
from typing import Any

import requests

from proctoring.aws import sync_client
from tests.lambdas.api.conftest import Service
from tests.lambdas.api.test_alerts import _alert, _raise


def _report_chain(service: Service, exam_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    report = service.call("GET", f"/exams/{exam_id}/report", "proctor").json()
    sheet = service.call("GET", f"/exams/{exam_id}/report.csv", "proctor").text
    *_, last = csv.DictReader(io.StringIO(sheet))
    return report["audit"], last


def test_uploads_refusals_reviews_and_erasures_are_chained_and_the_report_says_so(
    service: Service,
) -> None:
    exam_id = service.exam(start=True)
    student = service.enrol(exam_id)
    uploads = f"/exams/{exam_id}/students/{student}/uploads"
    (form,) = service.call(
        "POST", uploads, "student", json={"first_sequence": 0}
    ).json()["uploads"]  # fmt: skip
    posted = requests.post(
        form["url"], data=form["fields"], files={"file": ("c.webm", b"x", "video/webm")}, timeout=30
    )
    assert posted.status_code in (200, 204)
    again = service.call("POST", uploads, "student", json={"first_sequence": 0, "count": 2})
    assert again.status_code == 409 and again.json()["reason"] == "already_uploaded"
    alert = _alert(exam_id, student, 3)
    _raise(service, alert)
    review = f"/exams/{exam_id}/alerts/{alert['alert_id']}/review"
    service.call("POST", review, "proctor", json={"decision": "dismiss", "note": "a reflection"})

    trail = service.call("GET", f"/exams/{exam_id}/audit", "proctor").json()
    records = trail["records"]
    proctor = service.ids["proctor"]
    assert [(r["action"], r["by"]) for r in records] == [
        ("uploads_issued", student), ("upload_refused", student), ("review", proctor),
    ]  # fmt: skip
    assert (records[0]["sequences"], records[1]["refused"]) == ([0], 0)
    assert "a reflection" not in str(records), "the note is kept as its hash only"
    assert {r["chain"] for r in records} == {f"student#{student}"}
    assert trail["verification"]["verified"] and trail["verification"]["records"] == 3
    assert trail["verification"]["chains"] == {f"student#{student}": records[-1]["hash"]}
    chain, row = _report_chain(service, exam_id)
    assert chain == trail["verification"]
    assert (row["row"], row["sequence"], row["status"], row["note"]) == (
        "audit", "3", "verified", trail["verification"]["head"],
    )  # fmt: skip


def test_an_edited_or_deleted_audit_record_shows_in_the_report(service: Service) -> None:
    """Whoever can write the table (an operator, a stolen role) edits what was done, or
    deletes a record: the report no longer verifies and names the record."""
    exam_id = service.exam(start=True)
    student = service.enrol(exam_id)
    for first in (0, 1, 2):
        url = f"/exams/{exam_id}/students/{student}/uploads"
        assert service.call("POST", url, "student", json={"first_sequence": first}).ok
    before = service.call("GET", f"/exams/{exam_id}/audit", "proctor").json()["verification"]
    dynamodb = sync_client(service.settings, "dynamodb")
    table = service.settings.names.audit_table

    def key(seq: int) -> dict[str, Any]:
        return {"exam_id": {"S": exam_id}, "audit_id": {"S": f"student#{student}#{seq:012d}"}}

    dynamodb.update_item(
        TableName=table,
        Key=key(2),
        UpdateExpression="SET sequences = :s",
        ExpressionAttributeValues={":s": {"L": [{"N": "7"}]}},
    )
    chain, row = _report_chain(service, exam_id)
    altered = f"student#{student}: record 2 was altered"
    assert (chain["verified"], chain["problem"]) == (False, altered)
    assert (row["status"], row["note"]) == ("broken", altered)

    dynamodb.delete_item(TableName=table, Key=key(2))
    chain, _ = _report_chain(service, exam_id)
    assert (chain["verified"], chain["problem"]) == (
        False,
        f"student#{student}: record 2 is missing",
    )
    assert chain["chains"] == before["chains"], "a chain's head stays its newest record's"

"""KCL mode: ``proctor consume --kcl`` driven over pipes exactly as the MultiLangDaemon would.

No Java: the test plays the daemon's side of the MultiLang protocol (one JSON
message a line on the child's stdin, replies and checkpoint requests on its
stdout) and checks that a batch is checkpointed only after its results and
alerts are in DynamoDB.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import pytest

from proctoring.aws import sync_client
from proctoring.events import ChunkEvent, ChunkKey
from proctoring.integrity import IntegrityEvent
from proctoring.settings import Settings
from proctoring.storage import from_item
from producer.rendering import render_chunks
from producer.scenario import load_scenario
from tests.conftest import DATA, needs_data

pytestmark = [pytest.mark.slow, needs_data]
pytest.importorskip("amazon_kclpy", reason="amazon_kclpy is installed by `make test`")

EXAM = "kcl-exam"


class _Daemon:
    """The MultiLangDaemon's side of the pipes."""

    def __init__(self, settings: Settings, log: Path) -> None:
        env = {
            **os.environ,
            "PROCTOR_ENDPOINT_URL": settings.endpoint_url or "",
            "PROCTOR_PREFIX": settings.prefix,
            "PROCTOR_ALERTS_TOPIC_ARN": settings.alerts_topic_arn or "",
            "PROCTOR_CPU_WORKERS": "1",
            "PROCTOR_LOG_FORMAT": "json",
        }
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "consume", "--kcl"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        self._lines: Queue[bytes] = Queue()
        self._pumping = threading.Thread(target=self._pump, daemon=True)
        self._pumping.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():  # amazon_kclpy writes a blank line before each message
                self._lines.put(line)

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def receive(self, within: float = 60.0) -> dict[str, Any]:
        try:
            message: dict[str, Any] = json.loads(self._lines.get(timeout=within))
        except Empty:
            pytest.fail(f"no message from the record processor within {within} s")
        return message

    def close(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        code = self.process.wait(timeout=60)
        self._pumping.join(timeout=10)  # ends at the closed pipe's EOF
        assert self.process.stdout is not None
        self.process.stdout.close()
        self._log.close()
        return code


def _records(settings: Settings, tmp: Path) -> list[dict[str, Any]]:
    """Three real chunks of a student who left, uploaded, as the daemon would hand them over."""
    scenario = tmp / "gone.yaml"
    scenario.write_text("segments:\n  - empty: 15\n")
    chunks = list(render_chunks(load_scenario(scenario, data_dir=DATA), size=(320, 240)))
    s3 = sync_client(settings, "s3")
    records = []
    for chunk in chunks:
        key = ChunkKey(
            exam_id=EXAM,
            student_id="gone",
            source="camera",
            sequence=chunk.index,
            captured_ms=1_795_000_000_000 + chunk.index * 5000,
            ext="mp4",
        ).key
        s3.put_object(Bucket=settings.names.chunks_bucket, Key=key, Body=chunk.data)
        event = ChunkEvent.from_key(
            settings.names.chunks_bucket, key, size=len(chunk.data), uploaded_at=datetime.now(UTC)
        )
        records.append(
            {
                "action": "record",
                "data": base64.b64encode(event.to_bytes()).decode(),
                "partitionKey": event.partition_key,
                "sequenceNumber": f"4959000000000000000000000000000000000000000000000{chunk.index}",
                "subSequenceNumber": 0,
                "approximateArrivalTimestamp": 1_795_000_000_000,
            }
        )
    return records


def test_a_batch_is_checkpointed_only_after_its_effects_and_shard_end_is_checkpointed(
    settings: Settings, tmp_path: Path
) -> None:
    records = _records(settings, tmp_path)
    paste = IntegrityEvent(  # the stream's second event type goes the same way
        exam_id=EXAM,
        student_id="gone",
        event_id="ev-kcl-paste-0",
        seq=0,
        kind="paste",
        at=datetime.now(UTC),
        received_at=datetime.now(UTC),
    )
    records.append(
        {
            **records[-1],
            "data": base64.b64encode(paste.to_bytes()).decode(),
            "sequenceNumber": records[-1]["sequenceNumber"] + "1",
        }
    )
    dynamodb = sync_client(settings, "dynamodb")
    daemon = _Daemon(settings, tmp_path / "kcl.log")
    try:
        daemon.send(
            {
                "action": "initialize",
                "shardId": "shardId-000000000000",
                "sequenceNumber": "TRIM_HORIZON",
                "subSequenceNumber": 0,
            }
        )
        assert daemon.receive() == {"action": "status", "responseFor": "initialize"}

        daemon.send({"action": "processRecords", "records": records, "millisBehindLatest": 0})
        request = daemon.receive()
        assert request["action"] == "checkpoint"
        assert request["sequenceNumber"] == records[-1]["sequenceNumber"]
        # the checkpoint is asked for only now: every effect of the batch is durable already
        rows = dynamodb.query(
            TableName=settings.names.results_table,
            KeyConditionExpression="session_id = :s",
            ExpressionAttributeValues={":s": {"S": f"{EXAM}#gone"}},
        )["Items"]
        by_source = sorted((from_item(r)["source"], from_item(r)["sequence"]) for r in rows)
        assert by_source == [("camera", 0), ("camera", 1), ("camera", 2), ("integrity", 0)]
        alerts = dynamodb.query(
            TableName=settings.names.alerts_table,
            KeyConditionExpression="exam_id = :e",
            ExpressionAttributeValues={":e": {"S": EXAM}},
        )["Items"]
        raised = sorted((a["type"]["S"], a["published"]["BOOL"]) for a in alerts)
        assert raised == [("NO_FACE", True), ("PASTE", True)]
        daemon.send(
            {
                "action": "checkpoint",
                "sequenceNumber": request["sequenceNumber"],
                "subSequenceNumber": 0,
                "error": None,
            }
        )
        assert daemon.receive() == {"action": "status", "responseFor": "processRecords"}

        daemon.send({"action": "shardEnded"})
        request = daemon.receive()
        assert (request["action"], request["sequenceNumber"]) == ("checkpoint", None)
        daemon.send(
            {
                "action": "checkpoint",
                "sequenceNumber": "SHARD_END",
                "subSequenceNumber": 0,
                "error": None,
            }
        )
        assert daemon.receive() == {"action": "status", "responseFor": "shardEnded"}

        daemon.send({"action": "leaseLost"})
        assert daemon.receive() == {"action": "status", "responseFor": "leaseLost"}
    finally:
        code = daemon.close()
    assert code == 0
    logged = (tmp_path / "kcl.log").read_text()
    assert "kcl batch checkpointed" in logged
    assert '"ChunksProcessed":3' in logged, "EMF metrics go to stderr, never into the protocol"

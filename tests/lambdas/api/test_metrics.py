"""The API reports each request as CloudWatch EMF: a count per route and status, a latency."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from lambdas.api import Api
from lambdas.api.http import Request
from proctoring.metrics import Metrics


def test_each_request_is_counted_by_route_and_status_class_with_its_latency() -> None:
    lines: list[str] = []
    metrics = Metrics("Test", "api", lines.append)
    api = Api(SimpleNamespace(verifier=None), metrics=metrics)  # no user pool: 401 for a token

    async def run() -> list[int]:
        answers = [
            await api.handle(Request("GET", "/openapi.json")),
            await api.handle(Request("GET", "/exams")),
            await api.handle(Request("GET", "/no/such/route")),
        ]
        return [a.status for a in answers]

    statuses = asyncio.run(run())
    metrics.flush()
    documents = [json.loads(line) for line in lines]

    assert statuses == [200, 401, 404]
    counted = {(d["Route"], d["Status"]) for d in documents if "ApiRequests" in d}
    assert counted == {
        ("GET /openapi.json", "2xx"),
        ("GET /exams", "4xx"),
        ("unmatched", "4xx"),
    }
    timed = [d for d in documents if "ApiLatencyMs" in d]
    assert {d["Route"] for d in timed} == {"GET /openapi.json", "GET /exams", "unmatched"}
    for document in timed:
        (definition,) = document["_aws"]["CloudWatchMetrics"]
        assert {"Name": "ApiLatencyMs", "Unit": "Milliseconds"} in definition["Metrics"]

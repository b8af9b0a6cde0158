"""A warm API Lambda reuses its clients and the user pool's keys; new settings or a cold
container build them anew (``lambdas.container``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from aiobotocore.session import AioSession

import lambdas.api
from lambdas import container
from lambdas.api import handler
from lambdas.api.services import Services
from proctoring.settings import Settings
from tests.lambdas.api.conftest import Service, lambda_environment


@dataclass
class Counts:
    key_fetches: int = 0
    clients: int = 0
    opened: int = 0
    closed: int = 0


@pytest.fixture
def counts(service: Service, monkeypatch: pytest.MonkeyPatch) -> Counts:
    """The handler's environment, with key fetches, client and service builds counted."""
    lambda_environment(service.settings, monkeypatch)
    counts = Counts()
    fetch, create_client = jwt.PyJWKClient.fetch_data, AioSession.create_client
    open_services = lambdas.api.open_services

    def counted_fetch(self: jwt.PyJWKClient) -> Any:
        counts.key_fetches += 1  # one GET of the pool's jwks.json
        return fetch(self)

    def counted_client(self: AioSession, *args: Any, **kwargs: Any) -> Any:
        counts.clients += 1
        return create_client(self, *args, **kwargs)

    @asynccontextmanager
    async def counted_services(settings: Settings) -> AsyncIterator[Services]:
        counts.opened += 1
        try:
            async with open_services(settings) as services:
                yield services
        finally:
            counts.closed += 1

    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", counted_fetch)
    monkeypatch.setattr(AioSession, "create_client", counted_client)
    monkeypatch.setattr(lambdas.api, "open_services", counted_services)
    return counts


def _create_exam(service: Service, title: str) -> dict[str, Any]:
    response = handler(
        {
            "version": "2.0",
            "routeKey": "POST /exams",
            "rawPath": "/exams",
            "headers": {"authorization": f"Bearer {service.tokens['proctor']}"},
            "requestContext": {"http": {"method": "POST", "path": "/exams"}},
            "body": json.dumps({"title": title}),
            "isBase64Encoded": False,
        }
    )
    assert response["statusCode"] == 201, response["body"]
    return response


def test_a_warm_lambda_reuses_its_clients_and_the_pools_keys(
    service: Service, counts: Counts
) -> None:
    _create_exam(service, "First")
    first = (counts.key_fetches, counts.clients, counts.opened)
    assert first == (1, 5, 1)  # s3, dynamodb, kinesis, sns, sqs; no Chime, no Rekognition
    _create_exam(service, "Second")
    assert (counts.key_fetches, counts.clients, counts.opened) == first
    assert counts.closed == 0  # open for the next invocation
    titles = [e["title"] for e in service.call("GET", "/exams", "proctor").json()["exams"]]
    assert {"First", "Second"} <= set(titles)


def test_changed_settings_or_a_cold_container_build_anew_and_close_the_old(
    service: Service, counts: Counts, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create_exam(service, "First")
    monkeypatch.setenv("PROCTOR_CALL_TIMEOUT", "7")  # a redeploy with a new environment
    _create_exam(service, "Second")
    assert (counts.key_fetches, counts.clients, counts.opened, counts.closed) == (2, 10, 2, 1)
    container.close()  # the container ends; the next invocation is a cold start
    assert counts.closed == 2
    _create_exam(service, "Third")
    assert (counts.key_fetches, counts.clients, counts.opened, counts.closed) == (3, 15, 3, 2)


def test_kept_services_refuse_another_loop() -> None:
    async def elsewhere() -> None:  # e.g. asyncio.run per invocation: its clients would die
        await container.kept("services", Settings(), _never)

    with pytest.raises(RuntimeError, match="container's loop"):
        asyncio.run(elsewhere())


@asynccontextmanager
async def _never(settings: Settings) -> AsyncIterator[None]:
    raise AssertionError("not built off the container's loop")
    yield

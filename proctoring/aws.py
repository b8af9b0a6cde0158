"""The one place AWS clients are made.

Every client, sync (boto3) or async (aiobotocore), is built here from
``Settings``: the endpoint (the local emulator or real AWS), the region, a
timeout on every call and botocore's standard retry mode. Nothing builds a
client at import time; callers build them at the edge and pass them in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from aiobotocore.session import get_session
from botocore.config import Config

from proctoring.settings import Settings

__all__ = [
    "SENT_ELSEWHERE",
    "AsyncClients",
    "RequestCounter",
    "async_clients",
    "client_kwargs",
    "rekognition_client",
    "sync_client",
]

SENT_ELSEWHERE = "requests-sent-elsewhere"
"""The event a client's owner emits (``<this>.<service>.<Operation>``, ``count=n``) for the
requests sent elsewhere with the client's presigned URLs (``consumer.chunk_get``), so
that ``RequestCounter`` counts them as the client's."""

# The emulator accepts any credentials; these keep boto from searching for real ones.
_LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


def _config(settings: Settings, *, attempts: int, pool: int) -> Config:
    """Every client's: the call timeout on connect and read, standard retries, a pool."""
    return Config(
        connect_timeout=settings.call_timeout,
        read_timeout=settings.call_timeout,
        retries={"mode": "standard", "max_attempts": attempts},
        max_pool_connections=pool,
        parameter_validation=settings.validate_requests,
    )


def client_kwargs(settings: Settings, service: str = "", *, pool: int = 10) -> dict[str, Any]:
    """Keyword arguments for one service's client: endpoint, region, timeouts, retries.

    A service named in ``endpoint_urls`` is reached there (the local stack's emulator
    processes of their own, ``proctor up --split``); Kinesis may also be named by
    ``kinesis_endpoint_url`` (an independent emulator in conformance tests); every other
    service uses ``endpoint_url``.
    """
    kwargs: dict[str, Any] = {
        "region_name": settings.region,
        "config": _config(settings, attempts=5, pool=pool),
    }
    endpoint = settings.endpoint_urls.get(service) or settings.endpoint_url
    if service == "kinesis" and settings.kinesis_endpoint_url:
        endpoint = settings.kinesis_endpoint_url
    if service == "s3":  # presigned URLs (consumer.chunk_get) as AWS's requests: SigV4 (not
        # botocore's default SigV2 for them) and, in AWS, the region's virtual host (not the
        # global one, whose redirect a signed host cannot follow); the emulator: path-style
        s3: dict[str, Any] = {} if endpoint else {"addressing_style": "virtual"}
        kwargs["config"] = kwargs["config"].merge(Config(signature_version="s3v4", s3=s3))
    if endpoint:
        kwargs["endpoint_url"] = endpoint
        kwargs.update(_LOCAL_CREDENTIALS)
    return kwargs


def sync_client(settings: Settings, service: str) -> Any:
    """A boto3 client for one-off, synchronous work (provisioning, CLI)."""
    return boto3.session.Session().client(service, **client_kwargs(settings, service))


@dataclass(frozen=True)
class AsyncClients:
    """The async clients a long-running process keeps open for its lifetime."""

    s3: Any
    dynamodb: Any
    kinesis: Any
    sns: Any
    sqs: Any


@asynccontextmanager
async def async_clients(settings: Settings) -> AsyncIterator[AsyncClients]:
    """Open one aiobotocore client per service; close them all on exit."""
    session = get_session()
    pool = max(10, settings.concurrency * 2)
    async with AsyncExitStack() as stack:
        made = {
            name: await stack.enter_async_context(
                session.create_client(name, **client_kwargs(settings, name, pool=pool))
            )
            for name in ("s3", "dynamodb", "kinesis", "sns", "sqs")
        }
        yield AsyncClients(**made)


class RequestCounter:
    """Counts the HTTP requests some clients send, by ``service.Operation``.

    Hooked on botocore's ``before-send`` event, so a retried call counts each attempt: what
    the service bills and the emulator answers, not the calls the code makes. The requests
    sent elsewhere with a watched client's presigned URLs (the chunk GETs of the process pool,
    ``consumer.chunk_get``) count too, as their sender reports them (``SENT_ELSEWHERE``).
    For the benchmarks and the request-count tests; nothing is logged.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._clients: list[Any] = []

    def watch(self, clients: Iterable[Any]) -> RequestCounter:
        """Count every request of ``clients`` from now on (until ``stop``)."""
        for client in clients:
            client.meta.events.register("before-send", self._count, unique_id=f"count-{id(self)}")
            client.meta.events.register(
                SENT_ELSEWHERE, self._count, unique_id=f"elsewhere-{id(self)}"
            )
            self._clients.append(client)
        return self

    def stop(self) -> None:
        for client in self._clients:
            client.meta.events.unregister("before-send", unique_id=f"count-{id(self)}")
            client.meta.events.unregister(SENT_ELSEWHERE, unique_id=f"elsewhere-{id(self)}")
        self._clients.clear()

    def total(self) -> int:
        return sum(self.counts.values())

    def _count(self, event_name: str, count: int = 1, **kwargs: Any) -> None:
        # before-send.<service>.<Operation> (one request) or SENT_ELSEWHERE.<...> (``count``)
        _, service, operation = event_name.split(".", 2)
        self.counts[f"{service}.{operation}"] += count


def rekognition_client(settings: Settings) -> Any:
    """An aiobotocore Rekognition client context (``async with``).

    Never pointed at ``PROCTOR_ENDPOINT_URL``: no local emulator has Rekognition, so
    it goes to AWS (or ``PROCTOR_REKOGNITION_ENDPOINT_URL``) with the normal credential
    chain, even when the rest of the stack is local. Retries are left to the engine's
    budget, which backs off on throttling and pays a token for each attempt.
    """
    kwargs: dict[str, Any] = {
        "region_name": settings.region,
        "config": _config(settings, attempts=1, pool=max(10, settings.rekognition_concurrency * 4)),
    }
    if settings.rekognition_endpoint_url:
        kwargs["endpoint_url"] = settings.rekognition_endpoint_url
    return get_session().create_client("rekognition", **kwargs)

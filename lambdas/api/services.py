"""The services a handler uses, built once at the edge from ``Settings``.

The Lambda handler opens them once per container (``lambdas.container``);
the local server once, for its lifetime. Chime clients are made only when a Chime app instance is
configured; otherwise the local transport stands in (``proctoring.channels``).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiobotocore.session import get_session

from lambdas.api.auth import Verifier
from proctoring.analysis.base import Registered
from proctoring.audit import AuditLog
from proctoring.aws import AsyncClients, async_clients, client_kwargs, rekognition_client
from proctoring.channels import Channel, ChimeTransport, LocalTransport, Transport
from proctoring.exams import ExamStore
from proctoring.ratelimit import RateLimiter
from proctoring.settings import Settings
from proctoring.storage import Tables

__all__ = ["Services", "open_services"]

Register = Callable[[str, str, bytes, Sequence[bytes]], Awaitable[Registered]]


@dataclass
class Services:
    settings: Settings
    verifier: Verifier | None  # None: no user pool configured (the forwarder needs none)
    clients: AsyncClients
    tables: Tables
    exams: ExamStore
    audit: AuditLog
    channel: Channel
    register: Register
    rekognition: Any | None = None  # only with PROCTOR_ENGINE=rekognition (erasure)

    @property
    def s3(self) -> Any:
        return self.clients.s3


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    verifier: Verifier | None = None,
    transport: Transport | None = None,
    register: Register | None = None,
) -> AsyncIterator[Services]:
    from lambdas.register import register_photo

    async with AsyncExitStack() as stack:
        clients = await stack.enter_async_context(async_clients(settings))
        exams = ExamStore(
            clients.dynamodb,
            settings.names,
            retention_days=settings.retention_days,
            timeout=settings.call_timeout,
        )
        if transport is None and settings.uses_chime:
            session = get_session()
            chime = {
                name: await stack.enter_async_context(
                    session.create_client(service, **_aws_kwargs(settings, service))
                )
                for name, service in (
                    ("meetings", "chime-sdk-meetings"),
                    ("messaging", "chime-sdk-messaging"),
                    ("identity", "chime-sdk-identity"),
                    ("pipelines", "chime-sdk-media-pipelines"),
                )
            }
            transport = ChimeTransport(settings, **chime)
        rekognition = None
        if settings.engine == "rekognition":
            rekognition = await stack.enter_async_context(rekognition_client(settings))
        yield Services(
            settings=settings,
            verifier=verifier
            or (Verifier.from_settings(settings) if settings.user_pool_id else None),
            clients=clients,
            tables=Tables(clients.dynamodb, settings.names, timeout=settings.call_timeout),
            exams=exams,
            audit=AuditLog(
                clients.dynamodb,
                settings.names,
                retention_days=settings.audit_retention_days,
                timeout=settings.call_timeout,
            ),
            channel=Channel(
                exams,
                transport or LocalTransport(),
                RateLimiter(settings.channel_messages_per_second),
            ),
            register=register or functools.partial(register_photo, settings, clients=clients),
            rekognition=rekognition,
        )


def _aws_kwargs(settings: Settings, service: str) -> dict[str, Any]:
    """Chime has no emulator: always AWS, with the project's timeouts and retries."""
    kwargs = client_kwargs(settings.model_copy(update={"endpoint_url": None}), service)
    return kwargs

"""The demo exam on the proctor console: a proctor, the exam and its students, the web server.

``proctor demo`` replays recordings straight into S3 (no student page, no exam gate),
so the exam service's records are written here as the API would write them: the
user pool with a demo proctor, the exam (started, owned by that proctor) and one
enrolment per replayed student. The local server then serves the API, the alert
stream and the pages; the console's link carries the proctor's id token in the URL
fragment (never sent to the server, dropped from the address bar on load).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from dashboard.server import WEB_DIR, LocalServer
from infrastructure.local import add_user, provision_identity, sign_in
from lambdas.api import Api
from lambdas.api.services import Services, open_services
from proctoring.exams import now_iso
from proctoring.settings import Settings

__all__ = ["DEMO_PROCTOR", "ConsoleLink", "identity_for_demo", "serve_console"]

DEMO_PROCTOR = "demo.proctor@example.edu"


@dataclass(frozen=True)
class ConsoleLink:
    url: str  # the console showing the exam, signed in (the token is in the fragment)
    server: str


async def identity_for_demo(settings: Settings) -> tuple[Settings, str, str]:
    """(settings with the user pool, the demo proctor's id, their id token)."""
    identity = await asyncio.to_thread(provision_identity, settings)
    settings = settings.model_copy(
        update={
            "user_pool_id": identity["UserPoolId"],
            "user_pool_client_id": identity["UserPoolClientId"],
            "jwks_url": identity["JwksUrl"],
        }
    )
    password = secrets.token_urlsafe(12) + "aA1!"
    proctor_id = await asyncio.to_thread(
        add_user, settings, DEMO_PROCTOR, "proctor", password, name="Demo proctor"
    )
    token = (await asyncio.to_thread(sign_in, settings, DEMO_PROCTOR, password))["IdToken"]
    return settings, proctor_id, token


@asynccontextmanager
async def serve_console(
    settings: Settings,
    *,
    exam_id: str,
    title: str,
    proctor_id: str,
    token: str,
    students: list[tuple[str, str]],
) -> AsyncIterator[ConsoleLink]:
    """Record the exam and its ``students`` ((id, name) pairs), serve the console meanwhile."""
    async with open_services(settings) as services:
        await services.exams.create_exam(
            {
                "exam_id": exam_id,
                "title": title,
                "proctor_id": proctor_id,
                "status": "started",
                "student_alerts": False,
                "screen": False,
                "created_at": now_iso(),
                "started_at": now_iso(),
            }
        )
        for student_id, name in students:
            await services.exams.join(exam_id, student_id)
            await services.exams.update_student(
                exam_id, student_id, {"name": name, "registered_at": now_iso()}
            )
        async with serving_api(services, settings) as url:
            yield ConsoleLink(f"{url}/console.html?exam={exam_id}#token={token}", url)


@asynccontextmanager
async def serving_api(services: Services, settings: Settings) -> AsyncIterator[str]:
    """The exam service's API and pages for ``services``, served locally on the settings'
    host and port while the block runs: its URL."""
    server = LocalServer(
        Api(services), host=settings.host, port=settings.api_port,
        static_dir=settings.static_dir or WEB_DIR,
    )  # fmt: skip
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()

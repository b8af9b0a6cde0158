"""The exam service on the local server, against the emulator, with real Cognito users.

``service`` provisions a stack and its user pool in moto's server, creates
one user per role of the authorisation matrix (two proctors, two students,
an admin), signs them in through Cognito and serves the API from a local
server in a background thread. Requests go over HTTP with ``requests``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from cli.services import run_services
from dashboard.server import LocalServer
from infrastructure.local import add_user, provision_identity, sign_in
from lambdas.api import Api
from lambdas.api.services import open_services
from proctoring.settings import Settings

PASSWORD = "Local-Passw0rd-2026"
USERS = {
    "proctor": ("proctor@example.edu", "proctor"),
    "other_proctor": ("other.proctor@example.edu", "proctor"),
    "student": ("student@example.edu", "student"),
    "other_student": ("other.student@example.edu", "student"),
    "admin": ("office@example.edu", "admin"),
}


class ServerThread:
    """The local server with its own event loop in a thread (the tests are synchronous)."""

    def __init__(
        self, settings: Settings, *, pipeline: Executor | None = None, **services: Any
    ) -> None:
        self._settings = settings
        self._pipeline = pipeline  # run router, consumer and forwarder too, with this pool
        self._services = services
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.url = ""
        self.server: LocalServer | None = None
        self._thread = threading.Thread(target=self._run, name="api-server", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with open_services(self._settings, **self._services) as services:
            self.server = LocalServer(Api(services), stream_poll=0.1)
            self.url = await self.server.start()
            try:
                if self._pipeline is None:
                    self._ready.set()
                    await self._stop.wait()
                else:
                    async with asyncio.TaskGroup() as group:
                        group.create_task(
                            run_services(
                                self._settings,
                                self._stop,
                                forwarder=True,
                                executor=self._pipeline,
                                metrics_sink=lambda line: None,
                            )
                        )
                        self._ready.set()
            finally:
                await self.server.stop()

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"local server did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


@dataclass
class Service:
    settings: Settings
    url: str
    tokens: dict[str, str]
    ids: dict[str, str]
    server: ServerThread
    http: requests.Session = field(default_factory=requests.Session)

    def call(
        self, method: str, path: str, who: str | None = None, *, token: str | None = None, **kw: Any
    ) -> requests.Response:
        headers = dict(kw.pop("headers", {}))
        if token is None and who is not None:
            token = self.tokens[who]
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        kw.setdefault("timeout", 60)
        return self.http.request(method, self.url + path, headers=headers, **kw)

    def exam(self, who: str = "proctor", *, start: bool = False, **body: Any) -> str:
        response = self.call("POST", "/exams", who, json={"title": "Algebra I", **body})
        assert response.status_code == 201, response.text
        exam_id: str = response.json()["exam_id"]
        if start:
            assert self.call("POST", f"/exams/{exam_id}/start", who).status_code == 200
        return exam_id

    def enrol(self, exam_id: str, who: str = "student", *, consent: bool = True) -> str:
        assert self.call("POST", f"/exams/{exam_id}/join", who).status_code == 200
        student = self.ids[who]
        if consent:
            response = self.call(
                "PUT",
                f"/exams/{exam_id}/students/{student}/consent",
                who,
                json={"policy_version": self.settings.consent_version, "accepted": True},
            )
            assert response.status_code == 200, response.text
        return student


def identity_settings(settings: Settings) -> Settings:
    identity = provision_identity(settings)
    return settings.model_copy(
        update={
            "user_pool_id": identity["UserPoolId"],
            "user_pool_client_id": identity["UserPoolClientId"],
            "jwks_url": identity["JwksUrl"],
        }
    )


def users(settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    ids, tokens = {}, {}
    for who, (email, group) in USERS.items():
        ids[who] = add_user(settings, email, group, PASSWORD)
        tokens[who] = sign_in(settings, email, PASSWORD)["IdToken"]
    return ids, tokens


@contextlib.contextmanager
def _running(settings: Settings, pipeline: Executor | None = None) -> Iterator[Service]:
    settings = identity_settings(settings)
    ids, tokens = users(settings)
    server = ServerThread(settings, pipeline=pipeline).start()
    try:
        yield Service(settings, server.url, tokens, ids, server)
    finally:
        server.stop()


@pytest.fixture
def service(settings: Settings) -> Iterator[Service]:
    """The exam service over HTTP on the test's stack, with its users signed in."""
    with _running(settings) as running:
        yield running


@pytest.fixture
def rekognition_service(settings: Settings) -> Iterator[Service]:
    """The exam service with ``PROCTOR_ENGINE=rekognition``: its Rekognition client
    (``rekognition_client(service)``) is made, never called unless a test stubs it."""
    with _running(settings.model_copy(update={"engine": "rekognition"})) as running:
        yield running


def rekognition_client(service: Service) -> Any:
    """The aiobotocore Rekognition client the running service erases faces with."""
    assert service.server.server is not None
    return service.server.server.api.services.rekognition


@pytest.fixture
def live(settings: Settings, pool: Executor) -> Iterator[Service]:
    """The same with the pipeline (router and consumer) running and the exam gate on."""
    with _running(settings.model_copy(update={"exam_gate": True}), pipeline=pool) as running:
        yield running


def lambda_environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment the API Lambda reads its settings from, pointed at ``settings``."""
    for name, value in {
        "PROCTOR_ENDPOINT_URL": settings.endpoint_url,
        "PROCTOR_PREFIX": settings.prefix,
        "PROCTOR_USER_POOL_ID": settings.user_pool_id,
        "PROCTOR_USER_POOL_CLIENT_ID": settings.user_pool_client_id,
        "PROCTOR_JWKS_URL": settings.jwks_url,
        "PROCTOR_LOG_FORMAT": "console",
    }.items():
        monkeypatch.setenv(name, str(value))

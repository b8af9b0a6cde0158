"""The local HTTP server: the exam service's routes, its live alert stream, the web app's files.

One aiohttp server on 127.0.0.1 mounts the same ``Api`` the Lambda runs
(``lambdas.api``): every request becomes a ``Request``, goes through the same
token check, authorisation and handler, and its ``Response`` goes back as is.
What only this server does:

- ``GET /exams/{exam_id}/alerts/stream``: server-sent events of the exam's
  channel (``event: alert``, ``event: chat`` and ``event: control`` for an
  intervention, ``id`` = the message's key, ``Last-Event-ID`` resumes; an id
  that is not a message key is 400 ``bad_last_event_id``, never a range over
  the exam's other items), after the route's own authorisation.
  ``GET /exams/{exam_id}/students/{student_id}/stream`` is the same for one
  student's thread, with the kinds its route allows (the route's 200 answer
  says which). In AWS the pages follow the
  exam's Chime channel instead;
- ``GET /config.json``: what the web pages need to find the API and sign in
  (``web_config``: the API's base URL, the Cognito endpoint and app client,
  the consent version, the chunk length, whether Chime is configured). In AWS
  the same file is written beside the pages in the web bucket;
- files from ``static_dir`` (default ``dashboard/web``: the proctor console and
  the student page) for any other ``GET``, ``index.html`` for ``/``.

Every error is the API's JSON (``{"error", "reason"}``), including the ones
aiohttp answers before any handler runs - a request line or header over
``MAX_LINE_BYTES`` (``reason`` ``header_too_large``), a request that is not
HTTP (``bad_request``): a middleware never sees those, so the server is
aiohttp's low-level ``Server`` with a ``RequestHandler`` whose
``handle_error`` answers in JSON. The server listens on loopback only: it
serves a stack whose tokens anyone can forge (moto signs them with a key
shipped in its package).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import RawRequestMessage
from aiohttp.http_exceptions import LineTooLong
from aiohttp.streams import StreamReader

from lambdas.api.app import Api
from lambdas.api.http import MAX_BODY_BYTES, BadRequest, NotFound, Request, Response
from proctoring.exams import is_message_item
from proctoring.settings import Settings
from proctoring.waiting import wait_any

__all__ = ["LOOPBACK", "MAX_LINE_BYTES", "WEB_DIR", "LocalServer", "web_config"]

_log = structlog.get_logger(__name__)
_HEARTBEAT_SECONDS = 15.0
WEB_DIR = Path(__file__).resolve().parent / "web"
_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_LINE_BYTES = 8190  # the request line, and each header (aiohttp's default, stated here)


class _JsonErrors(web.RequestHandler):
    """aiohttp's connection handler, answering what it refuses itself in the API's JSON."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; raises if a reply began
        if isinstance(exc, LineTooLong):
            error = {
                "error": f"the request line or a header is over {MAX_LINE_BYTES} bytes",
                "reason": "header_too_large",
            }
        elif status < 500:
            error = {"error": "the request is not well-formed HTTP", "reason": "bad_request"}
        else:
            error = {"error": "internal error", "reason": "internal"}
        response = _send(Response.json(status, error))
        response.force_close()
        return response


class _Server(web.Server):
    """``web.Server`` whose connections are ``_JsonErrors``."""

    def __call__(self) -> web.RequestHandler:
        return _JsonErrors(self, loop=self._loop, **self._kwargs)


def web_config(settings: Settings, *, api_url: str = "") -> dict[str, Any]:
    """The pages' configuration: where the API and the user pool are (no secret in it)."""
    region = settings.region
    return {
        "api_url": api_url,  # "" = the pages' own origin (the local server serves both)
        "region": region,
        "cognito_endpoint": settings.endpoint_url or f"https://cognito-idp.{region}.amazonaws.com/",
        "client_id": settings.user_pool_client_id,
        "consent_version": settings.consent_version,
        "chunk_seconds": settings.chunk_seconds,
        "max_chunk_bytes": settings.max_chunk_bytes,
        "live_alerts": "sse" if settings.is_local else "chime",
        "chime": {"enabled": settings.uses_chime, "region": settings.chime_media_region or region},
    }


class LocalServer:
    """Serve ``api`` (and ``static_dir``) on ``host:port``; ``start`` returns the base URL."""

    def __init__(
        self,
        api: Api,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        static_dir: Path | None = WEB_DIR,
        stream_poll: float = 0.5,
        config: dict[str, Any] | None = None,
    ) -> None:
        if host not in LOOPBACK:
            raise ValueError(f"the local server listens on loopback only, not {host!r}")
        self.api = api
        self._host = host
        self._port = port
        self._static = static_dir.resolve() if static_dir else None
        self._config = config if config is not None else web_config(api.services.settings)
        self._poll = stream_poll
        self._closing = asyncio.Event()
        self.changed = asyncio.Event()  # set by an in-process poster: streams look at once
        self._runner: web.ServerRunner | None = None
        self.url = ""

    async def start(self) -> str:
        server = _Server(
            self._dispatch,
            request_factory=self._request,
            max_line_size=MAX_LINE_BYTES,
            max_field_size=MAX_LINE_BYTES,
            access_log=None,
        )
        self._runner = web.ServerRunner(server, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        port = self._runner.addresses[0][1]  # the port the system chose when asked for 0
        self.url = f"http://{self._host}:{port}"
        _log.info("local API server", url=self.url)
        return self.url

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: web.RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        """aiohttp's request, with room for the largest body the API takes."""
        return web.BaseRequest(
            message,
            payload,
            protocol,
            writer,
            task,
            asyncio.get_running_loop(),
            client_max_size=MAX_BODY_BYTES + 1024,
        )

    async def _dispatch(self, http: web.BaseRequest) -> web.StreamResponse:
        try:
            body = await http.read()
        except web.HTTPRequestEntityTooLarge:
            return _send(
                Response.json(413, {"error": "the body is too large", "reason": "too_large"})
            )
        request = Request(
            method=http.method,
            path=http.path,
            query=dict(http.query),
            headers={k.lower(): v for k, v in http.headers.items()},
            body=body,
        )
        try:
            route, _ = self.api.router.match(request.method, request.path)
        except NotFound:
            if http.method in ("GET", "HEAD") and http.path == "/config.json":
                return _send(Response.json(200, self._config))
            if http.method in ("GET", "HEAD") and self._static is not None:
                return self._file(http.path)
            return _send(await self.api.handle(request))
        response = await self.api.handle(request)
        if route.content_type == "text/event-stream" and response.status == 200:
            last = http.headers.get("Last-Event-ID")
            if last and not is_message_item(last):  # an id of ours, or a range over other items
                refused = BadRequest(
                    "Last-Event-ID is not an id of this stream's events", reason="bad_last_event_id"
                )
                return _send(Response.error(refused))
            return await self._stream(http, json.loads(response.body))
        return _send(response)

    def _file(self, path: str) -> web.StreamResponse:
        assert self._static is not None
        relative = path.lstrip("/") or "index.html"
        target = (self._static / relative).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(self._static) or not target.is_file():
            return _send(
                Response.json(404, {"error": f"no file {path[:200]}", "reason": "no_file"})
            )
        headers = {
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
            # the pages load only their own files; they talk to the API, Cognito and S3
            "Content-Security-Policy": (
                "default-src 'self'; img-src 'self' blob: data: http: https:; "
                "media-src 'self' blob: http: https:; connect-src 'self' http: https:; "
                "script-src 'self'; style-src 'self'; object-src 'none'; frame-ancestors 'none'"
            ),
        }
        if target.suffix in _TYPES:
            headers["Content-Type"] = _TYPES[target.suffix]
        return web.FileResponse(target, headers=headers)

    async def _stream(self, http: web.BaseRequest, scope: dict[str, Any]) -> web.StreamResponse:
        """Stream what the route authorised: the exam's channel (``exam_id``), or one thread
        (``student_id``) with only the message ``kinds`` it names."""
        exam_id, student_id, kinds = scope["exam_id"], scope.get("student_id"), scope.get("kinds")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            }
        )
        await response.prepare(http)
        store = self.api.services.exams
        cursor = http.headers.get("Last-Event-ID") or None
        quiet = 0.0
        try:
            await response.write(b"retry: 2000\n\n")
            while not self._closing.is_set():
                messages = await store.messages(exam_id, after=cursor, student_id=student_id)
                for message in messages:
                    cursor = message["item"]
                    if kinds is None or message.get("kind") in kinds:
                        await response.write(_event(message))
                if messages:
                    quiet = 0.0
                elif quiet >= _HEARTBEAT_SECONDS:
                    await response.write(b": keep-alive\n\n")
                    quiet = 0.0
                self.changed.clear()
                await wait_any(self.changed, self._closing, within=self._poll)
                quiet += self._poll
        except ConnectionResetError:
            _log.info("alert stream closed by the client", exam=exam_id)
        return response


def _event(message: dict[str, Any]) -> bytes:
    data = {k: v for k, v in message.items() if k not in ("exam_id", "item", "expires_at")}
    kind = message.get("kind") if message.get("kind") in ("alert", "chat") else "control"
    text = json.dumps(data, default=str, separators=(",", ":"))  # one line: no newline in JSON
    return f"id: {message['item']}\nevent: {kind}\ndata: {text}\n\n".encode()


def _send(response: Response) -> web.Response:
    return web.Response(status=response.status, body=response.body, headers=dict(response.headers))

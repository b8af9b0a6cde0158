"""Fault injection into real AWS clients through botocore's event hooks.

Neither emulator throttles or fails on its own, so tests make the *real*
client calls fail: a ``before-send`` handler answers some requests itself
with the error AWS would send - its HTTP status and an error body in the
service's own protocol (JSON for DynamoDB and Kinesis, XML for S3, SNS and
SQS) - before anything reaches the emulator. botocore then does exactly what
it does with AWS: parses the error, retries it under its retry mode, and
raises ``ClientError`` when the retries run out.

``FaultInjector.random(rate)`` fails a share of the calls (throttling);
``FaultInjector.switch()`` fails every call while ``down`` is true (an
outage, switched by the test).

The chunk's GET is not a botocore call: the process pool sends it with urllib3 to a
presigned URL (``consumer.chunk_get``), in another process. :class:`S3Front` faults it
where it travels: an HTTP server on loopback in front of the emulator's S3, which the
consumer's S3 client is pointed at (``Settings.endpoint_urls``, so the URLs it signs name
it too). It passes requests on, or answers those its ``fail`` picks as S3 does when it
throttles (503 ``SlowDown``, S3's XML error), or holds those its ``hold`` picks until the
test releases them (a slow download).
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

import urllib3
from aiobotocore.awsrequest import AioAWSResponse
from botocore.awsrequest import AWSResponse

from proctoring.settings import Settings

__all__ = ["FaultInjector", "S3Front"]


class FaultInjector:
    """Fails chosen operations of a client according to ``should_fail(operation, call)``."""

    def __init__(
        self,
        should_fail: Callable[[str, int], bool],
        *,
        code: str = "ProvisionedThroughputExceededException",
        message: str = "Rate exceeded for shard",
        status: int = 400,
        fields: dict[str, Any] | None = None,
    ) -> None:
        self._should_fail = should_fail
        self._code = code
        self._message = message
        self._status = status
        self._fields = fields or {}  # the error's modeled members (JSON protocols only)
        self.calls: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.down = False

    @classmethod
    def random(cls, rate: float, *, seed: int = 7, **kwargs: Any) -> FaultInjector:
        rng = random.Random(seed)
        return cls(lambda operation, call: rng.random() < rate, **kwargs)

    @classmethod
    def switch(cls, **kwargs: Any) -> FaultInjector:
        """Every call fails while ``down`` is set: ``injector.down = True`` starts the outage."""
        kwargs = {"code": "ServiceUnavailable", "message": "outage", "status": 503, **kwargs}
        injector = cls(lambda operation, call: injector.down, **kwargs)
        return injector

    def attach(self, client: Any, *operations: str) -> FaultInjector:
        """Fail the named operations of ``client``, or all of them when none is named."""
        model = client.meta.service_model
        service = model.service_id.hyphenize()
        protocol = model.protocol
        for operation in operations or ("*",):
            event = f"before-send.{service}" + ("" if operation == "*" else f".{operation}")
            client.meta.events.register(event, self._handler(protocol))
        return self

    def _handler(self, protocol: str) -> Callable[..., AWSResponse | None]:
        def before_send(request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
            operation = event_name.rsplit(".", 1)[-1]
            self.calls[operation] += 1
            if not self._should_fail(operation, self.calls[operation]):
                return None
            self.failed[operation] += 1
            content_type, body = self._body(protocol)
            response = AioAWSResponse(
                request.url,
                self._status,
                {"Content-Type": content_type, "x-amzn-RequestId": "injected"},
                None,
            )
            response._content = body
            return response

        return before_send

    def _body(self, protocol: str) -> tuple[str, bytes]:
        code, message = escape(self._code), escape(self._message)
        if protocol in ("json", "rest-json"):
            body = json.dumps({"__type": self._code, "message": self._message, **self._fields})
            return "application/x-amz-json-1.1", body.encode()
        if protocol == "query":
            return "text/xml", (
                "<ErrorResponse><Error><Type>Sender</Type>"
                f"<Code>{code}</Code><Message>{message}</Message></Error>"
                "<RequestId>injected</RequestId></ErrorResponse>"
            ).encode()
        return "application/xml", (  # rest-xml: S3
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            "<RequestId>injected</RequestId></Error>"
        ).encode()


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


class S3Front:
    """An HTTP server on loopback in front of the emulator's S3 (module docstring).

    ``fail(method, path)``: answer 503 SlowDown instead of passing the request on;
    ``hold(method, path)``: wait until ``released`` is set before passing it on.
    ``seen`` counts the requests by ``"METHOD path"`` (path without the query: a presigned
    URL's signature is not kept). ``with S3Front(upstream) as front:`` serves on a free port.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.fail: Callable[[str, str], bool] = lambda method, path: False
        self.hold: Callable[[str, str], bool] = lambda method, path: False
        self.released = threading.Event()
        self.seen: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self._http = urllib3.PoolManager(maxsize=32, retries=False)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def settings(self, settings: Settings) -> Settings:
        """``settings`` with S3 reached through this front."""
        return settings.model_copy(
            update={"endpoint_urls": {**settings.endpoint_urls, "s3": self.url}}
        )

    def __enter__(self) -> S3Front:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._http.clear()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as S3 and the emulator

            def log_message(self, format: str, *args: Any) -> None:
                pass  # nothing logged: the request line carries a presigned URL

            def _pass(self) -> None:
                method, path = self.command, self.path.split("?", 1)[0]
                front.seen[f"{method} {path}"] += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if front.fail(method, path):
                    front.failed[f"{method} {path}"] += 1
                    error = (
                        b"<Error><Code>SlowDown</Code><Message>Please reduce your request"
                        b" rate.</Message><RequestId>injected</RequestId></Error>"
                    )
                    self._answer(503, {"Content-Type": "application/xml"}, error)
                    return
                if front.hold(method, path):
                    front.released.wait()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Host"] = front.upstream.split("://", 1)[1]
                answer = front._http.request(
                    method, front.upstream + self.path, body=body, headers=headers
                )
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
                self._answer(answer.status, kept, answer.data)

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _pass

        return Handler

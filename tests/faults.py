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
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from aiobotocore.awsrequest import AioAWSResponse
from botocore.awsrequest import AWSResponse

__all__ = ["FaultInjector"]


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

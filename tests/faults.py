"""Fault injection into real AWS clients through botocore's event hooks.

Neither emulator throttles or fails on its own, so tests make the *real*
client calls fail: a ``before-send`` handler answers some requests itself
with the error AWS would send (HTTP 400 and the JSON error body), before
anything reaches the emulator. botocore then does exactly what it does with
AWS: parses the error, retries it under its retry mode, and raises
``ClientError`` when the retries run out.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

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
    ) -> None:
        self._should_fail = should_fail
        self._code = code
        self._message = message
        self.calls: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()

    @classmethod
    def random(cls, rate: float, *, seed: int = 7, **kwargs: Any) -> FaultInjector:
        rng = random.Random(seed)
        return cls(lambda operation, call: rng.random() < rate, **kwargs)

    def attach(self, client: Any, *operations: str) -> FaultInjector:
        service = client.meta.service_model.service_id.hyphenize()
        for operation in operations:
            client.meta.events.register(
                f"before-send.{service}.{operation}", self._handler(operation)
            )
        return self

    def _handler(self, operation: str) -> Callable[..., AWSResponse | None]:
        def before_send(request: Any, **_: Any) -> AWSResponse | None:
            self.calls[operation] += 1
            if not self._should_fail(operation, self.calls[operation]):
                return None
            self.failed[operation] += 1
            response = AioAWSResponse(
                request.url,
                400,
                {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "injected"},
                None,
            )
            response._content = json.dumps(
                {"__type": self._code, "message": self._message}
            ).encode()
            return response

        return before_send

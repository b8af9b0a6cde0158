"""The exam service's routes and the one dispatcher both servers call.

Handler modules (``exams``, ``sessions``, ``alerts``, ``chat``, ``reports``,
``erasure``) declare their routes on ``ROUTER`` with who may call them at
all (Cognito groups); each handler then authorises by ownership (a proctor
only the exams they run, a student only their own session). ``Api.handle``
matches the route, verifies the token, checks the group, runs the handler
and turns every refusal into its 4xx JSON answer; a failure of AWS becomes a
503, any other exception a 500 with no detail in the body (it is logged).
The OpenAPI document is built from the same routes (``lambdas.api.openapi``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from lambdas.api.auth import ADMIN, PROCTOR, STUDENT, Principal, Role
from lambdas.api.http import ApiError, Forbidden, NotFound, Request, Response, Unauthorized
from lambdas.api.services import Services
from proctoring.metric_names import MetricName
from proctoring.metrics import Metrics
from proctoring.storage import StorageError

__all__ = [
    "ANYONE_SIGNED_IN",
    "PROCTORS",
    "ROUTER",
    "STUDENTS",
    "Api",
    "Context",
    "Route",
    "Router",
]

_log = structlog.get_logger(__name__)

PROCTORS: frozenset[Role] = frozenset({PROCTOR, ADMIN})
STUDENTS: frozenset[Role] = frozenset({STUDENT})
ANYONE_SIGNED_IN: frozenset[Role] = frozenset({PROCTOR, ADMIN, STUDENT})


@dataclass(frozen=True)
class Context:
    """What a handler gets beside the request: the caller and the services."""

    principal: Principal
    services: Services

    @property
    def user_id(self) -> str:
        return self.principal.user_id


Handler = Callable[[Request, Context], Awaitable[Response]]


@dataclass(frozen=True)
class Query:
    name: str
    description: str
    required: bool = False
    enum: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    groups: frozenset[Role]
    ok: int = 200
    body: type[BaseModel] | None = None
    response: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    content_type: str = "application/json"
    query: tuple[Query, ...] = ()
    errors: tuple[int, ...] = (400, 401, 403, 404)
    local_only: bool = False  # served by the local server only (the live SSE stream)
    tag: str = ""

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"(\{\w+\})", self.path)
        regex = "".join(
            f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts
        )
        return re.compile(f"^{regex}$")


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(
        self, method: str, path: str, *, summary: str, groups: frozenset[Role], **options: Any
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(method, path, handler, summary=summary, groups=groups, **options)
            )
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed = []
        for candidate in self.routes:
            found = candidate.pattern.match(path)
            if found is None:
                continue
            if candidate.method == method:
                return candidate, found.groupdict()
            allowed.append(candidate.method)
        if allowed:
            raise NotFound(f"{method} is not allowed on {path[:200]}", reason="method")
        raise NotFound(f"no route {method} {path[:200]}", reason="no_route")

    def by_key(self, route_key: str) -> Route:
        for candidate in self.routes:
            if candidate.route_key == route_key:
                return candidate
        raise NotFound(f"no route {route_key[:200]}", reason="no_route")


ROUTER = Router()


class Api:
    """Dispatch one request: route, token, group, handler, errors."""

    def __init__(
        self, services: Services, router: Router = ROUTER, *, metrics: Metrics | None = None
    ) -> None:
        self.services = services
        self.router = router
        # ApiRequests (Route, Status class) and ApiLatencyMs (Route), as EMF; the Lambda
        # handler prints and flushes them per invocation, the local server per its caller
        self.metrics = metrics or Metrics("proctoring", "api", lambda line: None)

    async def handle(self, request: Request, route_key: str | None = None) -> Response:
        started = time.perf_counter()
        route: Route | None = None
        try:
            if route_key is not None:  # API Gateway matched it already
                route = self.router.by_key(route_key)
                params = dict(request.path_params)
            else:
                route, params = self.router.match(request.method, request.path)
            request = Request(
                request.method, request.path, params, request.query, request.headers, request.body
            )
            principal = await self.authorise(request, route)
            response = await route.handler(request, Context(principal, self.services))
        except ApiError as exc:
            response = Response.error(exc)
        except (StorageError, ClientError, BotoCoreError, TimeoutError) as exc:
            _log.error("AWS call failed", route=route and route.route_key, error=repr(exc)[:300])
            response = Response.json(
                503, {"error": "a service is unavailable; try again", "reason": "unavailable"}
            )
        except Exception:
            _log.exception("handler failed", route=route and route.route_key)
            response = Response.json(500, {"error": "internal error", "reason": "internal"})
        ms = round((time.perf_counter() - started) * 1000, 1)
        route_key = route.route_key if route else "unmatched"
        self.metrics.add(
            MetricName.ApiRequests, Route=route_key, Status=f"{response.status // 100}xx"
        )
        self.metrics.add(MetricName.ApiLatencyMs, ms, "Milliseconds", Route=route_key)
        _log.info("request", route=route_key, status=response.status, ms=ms)
        return response

    async def authorise(self, request: Request, route: Route) -> Principal:
        """The verified caller, in one of the route's groups (anyone for a public route)."""
        if not route.groups:
            return _ANONYMOUS
        if self.services.verifier is None:
            raise Unauthorized(
                "no user pool is configured (PROCTOR_USER_POOL_ID)", reason="no_pool"
            )
        principal = await self.services.verifier.verify(_token_of(request, route))
        if principal.role is None or not (principal.groups & route.groups):
            raise Forbidden(
                f"{route.route_key} is for {', '.join(sorted(route.groups))}", reason="group"
            )
        return principal


_ANONYMOUS = Principal(user_id="", groups=frozenset())


def _token_of(request: Request, route: Route) -> str | None:
    """The Authorization header; the SSE stream also takes ``access_token`` (EventSource sends
    no headers)."""
    header = request.headers.get("authorization")
    if header is None and route.content_type == "text/event-stream":
        token = request.query.get("access_token")
        return f"Bearer {token}" if token else None
    return header


def require(condition: bool, message: str, reason: str = "not_owner") -> None:
    if not condition:
        raise Forbidden(message, reason=reason)

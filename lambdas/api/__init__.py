"""The exam service: one Lambda behind API Gateway's HTTP API, and the same routes locally.

``handler`` is the Lambda entry point (payload format 2.0): API Gateway has
matched the route and checked the token already (JWT authoriser); the handler
verifies the token again (``lambdas.api.auth``), authorises by ownership and
answers. ``dashboard.server`` mounts the same ``Api`` on a local HTTP server.

Modules: ``http`` (requests, responses, errors), ``auth`` (tokens), ``app``
(routes, dispatch), ``services`` (clients and stores), one module per
resource (``exams``, ``sessions``, ``uploads``, ``integrity``, ``interventions``,
``alerts``, ``chat``, ``reports``, ``erasure``, ``roster``), ``openapi`` (the document, from the
routes).

A warm container answers every invocation with the same services (AWS
clients, the token verifier and its cached keys): ``lambdas.container``.

``live`` joins a caller to the exam's Chime meeting for live video.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from lambdas import container
from lambdas.api.app import ROUTER, Api
from lambdas.api.http import from_lambda_event, to_lambda_response
from lambdas.api.services import open_services
from proctoring.logs import configure_logging
from proctoring.metrics import Metrics
from proctoring.settings import Settings

__all__ = ["ROUTER", "Api", "handler"]

# Importing the resource modules declares their routes on ROUTER.
_ROUTED = tuple(
    import_module(f"{__name__}.{name}")
    for name in [
        "alerts",
        "chat",
        "erasure",
        "exams",
        "integrity",
        "interventions",
        "live",
        "openapi",
        "photos",
        "reports",
        "roster",
        "sessions",
        "uploads",
    ]
)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """AWS Lambda entry point for every route of the HTTP API."""
    settings = Settings()
    configure_logging(settings)
    return container.run(_handle(event, settings))


async def _handle(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    metrics = Metrics(settings.metrics_namespace, "api", print)  # EMF lines on stdout
    services = await container.kept("services", settings, open_services)
    response = await Api(services, metrics=metrics).handle(
        from_lambda_event(event), route_key=event.get("routeKey")
    )
    metrics.flush()
    return to_lambda_response(response)

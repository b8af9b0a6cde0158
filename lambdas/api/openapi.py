"""The OpenAPI 3.1 document of the exam service, built from the routes themselves.

Every route's path, parameters, request body (the handler's pydantic model),
answers (the schemas of ``lambdas.api.schemas`` and the error shape for each
refusal it can give) and security (the Cognito bearer token) come from its
declaration, so the document cannot drift from what is served.
``GET /openapi.json`` serves it, without a token.
"""

from __future__ import annotations

import re
from typing import Any

from lambdas.api.app import ROUTER, Context, Route, Router
from lambdas.api.http import Request, Response
from lambdas.api.schemas import ERROR

__all__ = ["document"]

_REASONS = {
    400: "Bad request: a malformed body, parameter or id",
    401: "No token, or a token that does not verify",
    403: "The caller may not do this",
    404: "No such exam, student or alert",
    409: "The exam or enrolment is in the wrong state",
    413: "The body is too large",
    422: "Well-formed but unusable",
    503: "An AWS service is unavailable; try again",
}


def _operation(route: Route) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"},
        }
        for name in re.findall(r"\{(\w+)\}", route.path)
    ]
    for query in route.query:
        schema: dict[str, Any] = {"type": "string"}
        if query.enum:
            schema["enum"] = list(query.enum)
        params.append(
            {
                "name": query.name,
                "in": "query",
                "required": query.required,
                "description": query.description,
                "schema": schema,
            }
        )
    content = {route.content_type: {"schema": route.response}}
    responses: dict[str, Any] = {str(route.ok): {"description": "OK", "content": content}}
    errors = set(route.errors) | ({401, 403} if route.groups else set()) | {400, 503}
    for status in sorted(errors):
        responses[str(status)] = {
            "description": _REASONS[status],
            "content": {"application/json": {"schema": ERROR}},
        }
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag] if route.tag else [],
        "parameters": params,
        "responses": responses,
        "security": [{"cognito": []}] if route.groups else [],
    }
    if route.groups:
        operation["x-groups"] = sorted(route.groups)
    if route.local_only:
        operation["x-local-only"] = True
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.body.model_json_schema()}},
        }
    return operation


def document(router: Router = ROUTER, *, server_url: str | None = None) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in router.routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Hybrid proctoring exam service",
            "version": "1",
            "description": (
                "Exams, sessions, consent, uploads, results, alerts, chat, reports and"
                " erasure. Every route but this document needs a Cognito token of the"
                " user pool (Authorization: Bearer)."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "cognito": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
        },
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


@ROUTER.route(
    "GET",
    "/openapi.json",
    summary="This document",
    groups=frozenset(),
    errors=(),
    tag="meta",
)
async def openapi_document(request: Request, ctx: Context) -> Response:
    return Response.json(200, document())

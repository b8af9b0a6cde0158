"""Registration: a student's photo becomes the reference face for an exam.

``register_photo`` is what the exam service's registration route
(``lambdas.api.sessions``: token, ownership and consent checked first) and
``proctor register`` call. ``handler`` is the bare function without those
checks; it is no longer deployed (the template routes registration to
``lambdas.api.handler``) and stays for direct operator use. A photo without
exactly one usable face is refused with a message the student can act on
(HTTP 422). The face's embedding goes to the collection, never to a log.

The caller may pass the AWS clients it keeps (the API's services, for the
container: ``lambdas.container``); ``handler`` keeps its own the same way.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from typing import Any

import structlog

from lambdas import container
from proctoring.analysis.base import Registered
from proctoring.analysis.engine import open_engine
from proctoring.analysis.faces import RegistrationError
from proctoring.aws import AsyncClients, async_clients
from proctoring.enrolment import enrol
from proctoring.events import ChunkKey, InvalidEvent
from proctoring.logs import configure_logging
from proctoring.settings import Settings
from proctoring.storage import Tables

__all__ = ["handler", "register_photo"]

_log = structlog.get_logger(__name__)
MAX_PHOTO_BYTES = 5 * 1024 * 1024  # Rekognition's inline image limit; the same for both engines


async def register_photo(
    settings: Settings,
    exam_id: str,
    student_id: str,
    photo: bytes,
    frames: Sequence[bytes] = (),
    *,
    clients: AsyncClients | None = None,
) -> Registered:
    """Validate ids, photo and camera frames, then store the face (and the frames' faces
    beside it); RegistrationError says what is wrong. Without ``clients``
    it opens its own for the call."""
    try:  # the ids must be usable in chunk keys
        ChunkKey(
            exam_id=exam_id,
            student_id=student_id,
            source="camera",
            sequence=0,
            captured_ms=0,
            ext="mp4",
        )
    except ValueError as exc:
        raise InvalidEvent(f"invalid exam or student id: {exc}", reason="bad_id") from exc
    for image in (photo, *frames):
        if len(image) > MAX_PHOTO_BYTES:
            raise RegistrationError(
                f"the photo is {len(image) // 1024} KB; at most {MAX_PHOTO_BYTES // 1024} KB",
                reason="too_large",
            )
    async with AsyncExitStack() as stack:
        if clients is None:
            clients = await stack.enter_async_context(async_clients(settings))
        tables = Tables(clients.dynamodb, settings.names, timeout=settings.call_timeout)
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        engine = await stack.enter_async_context(open_engine(settings, tables, pool))
        face = await enrol(  # PROCTOR_ENGINE decides; the last frame seeds the schedule
            engine,
            clients.s3,
            settings.names.frames_bucket,
            exam_id,
            student_id,
            photo,
            frames,
        )
    _log.info(
        "student registered",
        exam=exam_id,
        student=student_id,
        face_px=face.box[2],
        frames_enrolled=face.frames_enrolled,
    )
    return face


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
    }


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """AWS Lambda entry point (API Gateway proxy integration)."""
    settings = Settings()
    configure_logging(settings)
    params = event.get("pathParameters") or {}
    try:
        body = json.loads(event.get("body") or "{}")
        photo = base64.b64decode(body["photo"], validate=True)
    except (json.JSONDecodeError, KeyError, TypeError, binascii.Error):
        return _response(400, {"error": "body must be JSON with 'photo': base64 JPEG or PNG"})
    try:
        face = container.run(
            _register(settings, params.get("exam_id", ""), params.get("student_id", ""), photo)
        )
    except RegistrationError as exc:
        return _response(422, {"error": str(exc), "reason": exc.reason})
    except InvalidEvent as exc:
        return _response(400, {"error": str(exc), "reason": exc.reason})
    return _response(201, {"registered": True, "face": {"box": list(face.box)}})


async def _register(settings: Settings, exam_id: str, student_id: str, photo: bytes) -> Registered:
    clients = await container.kept("clients", settings, async_clients)
    return await register_photo(settings, exam_id, student_id, photo, clients=clients)

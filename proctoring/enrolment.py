"""Registration's camera frame, kept to seed the identity schedule.

A registration with camera frames (the student page takes them moments before
recording starts) has just compared that face with the photo: the engine
refuses frames of someone else. :func:`enrol` registers with the engine and
keeps the last frame in the frames bucket, under the student's prefix, at one
key per student (:func:`frame_key`): the bucket's retention expires it and
erasure (every object under ``frames/<exam>/<student>/``) deletes it with the
rest. A registration without frames deletes it, so an older frame never
stands for a newer registration.

The consumer reads it once, before the student's first camera chunk is
scheduled (:func:`read_frame`): the face it shows is where the schedule
starts, as if identity had been checked on it (``ScheduleState.enrolled``).
The first chunk then pays for SearchFacesByImage only when its face is not the
enrolled one (another place, size, count, or content). A missing or unreadable
frame is no error: the first chunk is checked, as without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from proctoring.analysis.base import Engine, Registered

__all__ = ["enrol", "frame_key", "read_frame"]

_log = structlog.get_logger(__name__)
_MAX_FRAME_BYTES = 5 * 1024 * 1024


def frame_key(exam_id: str, student_id: str) -> str:
    """Where the registration's camera frame is kept in the frames bucket."""
    return f"frames/{exam_id}/{student_id}/registration/enrolment.jpg"


async def enrol(
    engine: Engine,
    s3: Any,
    bucket: str,
    exam_id: str,
    student_id: str,
    photo: bytes,
    frames: Sequence[bytes] = (),
) -> Registered:
    """Register the face with ``engine``, then keep (or forget) the last camera frame."""
    face = await engine.register(exam_id, student_id, photo, frames)
    key = frame_key(exam_id, student_id)
    if frames and face.frames_enrolled:
        await s3.put_object(Bucket=bucket, Key=key, Body=frames[-1], ContentType="image/jpeg")
    else:
        await s3.delete_object(Bucket=bucket, Key=key)
    return face


async def read_frame(s3: Any, bucket: str, exam_id: str, student_id: str) -> bytes | None:
    """The kept frame; None when there is none or it cannot be read (logged). The caller
    bounds the time (a timeout is logged the same way)."""
    key = frame_key(exam_id, student_id)
    try:
        response = await s3.get_object(Bucket=bucket, Key=key)
        if response["ContentLength"] > _MAX_FRAME_BYTES:
            response["Body"].close()
            raise ValueError(f"{response['ContentLength']} bytes")
        async with response["Body"] as body:
            data: bytes = await body.read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code not in ("NoSuchKey", "404"):
            _log.warning("enrolment frame unreadable", key=key, error=code)
        return None
    except (BotoCoreError, TimeoutError, ValueError) as exc:
        _log.warning("enrolment frame unreadable", key=key, error=type(exc).__name__)
        return None
    return data

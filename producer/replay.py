"""Replay: upload a session's chunks to the chunks bucket as one student would.

Chunks are uploaded under the key layout the router understands
(``proctoring.events.ChunkKey``), each when it would have finished
recording: at ``speed`` 1.0 that is real time (chunk *n* of 5 s goes up 5*(n+1)
s after the start), at 4.0 four times faster, and with ``speed=None`` as fast
as the bucket takes them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import structlog

from proctoring.events import ChunkKey, Source
from producer.chunking import Chunk

__all__ = ["Uploaded", "replay"]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Uploaded:
    sequence: int
    key: str
    size: int


async def replay(
    chunks: Iterable[Chunk],
    *,
    s3: object,
    bucket: str,
    exam_id: str,
    student_id: str,
    source: Source = "camera",
    speed: float | None = 1.0,
    first_sequence: int = 0,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_upload: Callable[[Uploaded], None] | None = None,
) -> list[Uploaded]:
    """Upload every chunk in order; return what was uploaded."""
    if speed is not None and speed <= 0:
        raise ValueError("speed must be positive, or None for as fast as possible")
    started = clock()
    uploaded: list[Uploaded] = []
    for offset, chunk in enumerate(chunks):
        if speed is not None:
            due = started + (chunk.start + chunk.duration) / speed
            delay = due - clock()
            if delay > 0:
                await sleep(delay)
        captured_ms = int((started + chunk.start / (speed or 1.0)) * 1000)
        key = ChunkKey(
            exam_id=exam_id,
            student_id=student_id,
            source=source,
            sequence=first_sequence + offset,
            captured_ms=captured_ms,
            ext="mp4",
        ).key
        await s3.put_object(  # type: ignore[attr-defined]
            Bucket=bucket, Key=key, Body=chunk.data, ContentType="video/mp4"
        )
        item = Uploaded(first_sequence + offset, key, len(chunk.data))
        uploaded.append(item)
        _log.debug("chunk uploaded", student=student_id, seq=item.sequence, bytes=item.size)
        if on_upload is not None:
            on_upload(item)
    return uploaded

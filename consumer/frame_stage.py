"""The frame stage: one chunk from its S3 object to its frame, stored as evidence when needed.

Per chunk, concurrently (at most ``PROCTOR_CONCURRENCY`` at once), :meth:`FrameStage.run`:

1. reads the sequence's result row: a *different* object than the one it was written
   for (``another_object``: another key, or other bytes under the same key) is not
   extracted at all - the chunk goes on as a second object (``Chunk.first``). Not read
   when the worker's kept session shows the sequence above every row it wrote for the
   student's source (``run(new=True)``): the row's conditional write is the guard then;
2. signs a short-lived GET URL for the chunk (``consumer.chunk_get.presign``) and sends it
   to the process pool (with the chunks that wait for it while every pool process is busy,
   in one job: ``proctoring.pool.CallGroups``), where ``consumer.chunk_job.read_chunk``
   GETs the chunk (within the size limit; the S3 version read is kept), hashes its bytes
   (``chunk_sha256``) and, unless it is another object, extracts one upright frame (the
   middle one by default), its 32x32 thumbnail for the schedule and, with the policy's
   ``audio: true``, the speech in the audio track (``consumer.speech``). The chunk's bytes
   never pass through the event loop; the job's HTTP requests are reported to the S3
   client's request counters (``proctoring.aws.RequestCounter``).
The frame is stored as evidence only when it is needed (``ChunkProcessor._apply`` decides
after the analysis: a rule fired on the chunk, the student's first chunk of the source, or
``frame_every`` chunks since the last stored one, the exam's policy). :meth:`FrameStage.store`
puts the JPEG under ``frames/<exam>/<student>/<source>/<seq>.jpg`` with ``If-None-Match: *``:
a re-delivery finds the frame written first and keeps it, and the hash returned is the
stored frame's (``frame_sha256``).

With the middle frame, the chunk's first frame is the fallback when the middle one
shows no face: ``FirstFrame`` extracts it only when the analyser asks; it is then the
chunk's frame (:meth:`FrameStage.use_fallback`), stored under a key of its own.

Bad input (``too_large``, ``missing_object``, a chunk that is empty, not video or
truncated) comes back as ``Chunk.error``; AWS failures raise.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any, Literal

import structlog
from botocore.exceptions import ClientError

from consumer.analyser import Analysed, Policies
from consumer.batch import Record
from consumer.chunk_get import failure, presign
from consumer.chunk_job import Read, read_chunk
from consumer.speech import Heard
from proctoring.aws import SENT_ELSEWHERE
from proctoring.events import ChunkEvent, InvalidEvent
from proctoring.frames import Frame, FrameError
from proctoring.metric_names import MetricName
from proctoring.metrics import Metrics
from proctoring.pool import CallGroups
from proctoring.settings import Settings
from proctoring.speech import Speech
from proctoring.storage import Tables

__all__ = [
    "Chunk",
    "FirstFrame",
    "FrameStage",
    "KeptFrames",
    "another_object",
    "frame_key",
]

_log = structlog.get_logger(__name__)


class FirstFrame:
    """A chunk's first frame, the fallback when its middle frame shows no face.

    Extracted only when asked (the chunk fetched again): most chunks show a face in
    the middle frame, and extracting the first one up front cost every chunk a second
    decode and JPEG (docs/benchmarks.md). Asked again, it answers from memory.
    """

    def __init__(self, load: Callable[[], Awaitable[Frame]]) -> None:
        self._load = load
        self.frame: Frame | None = None

    async def jpeg(self) -> bytes | None:
        if self.frame is None:
            try:
                self.frame = await self._load()
            except FrameError as exc:  # gone or unreadable since the middle frame: none
                _log.warning("first frame unavailable", reason=exc.reason, error=str(exc))
                return None
        return self.frame.jpeg


@dataclass(frozen=True)
class Chunk:
    """One chunk event on its way through the stages: what each stage found."""

    event: ChunkEvent
    record: Record
    frame: Frame | None = None
    frame_key: str | None = None
    thumb: bytes | None = None
    fallback: FirstFrame | None = None
    analysed: Analysed | None = None
    error: FrameError | InvalidEvent | None = None
    digest: str | None = None  # SHA-256 of the chunk's bytes as read
    version: str | None = None  # the S3 version read (versioned bucket)
    frame_digest: str | None = None
    frame_version: str | None = None
    first: dict[str, Any] | None = None  # the sequence's earlier result: this is a second object
    heard: Heard = None  # the speech in its audio track (policy ``audio: true``)
    extracted_at: float | None = None  # frame extracted, epoch seconds (latency breakdown)
    analysed_at: float | None = None  # the engine answered, epoch seconds (latency breakdown)
    absent: bool = False  # the sequence had no result row when looked at (or the kept
    # session vouched for it): its row may go with the session's save (``Tables.save_session``)
    fallback_used: bool = False  # ``frame`` is the first frame, analysed instead of the middle


def frame_key(event: ChunkEvent, variant: str = "") -> str:
    """Where a chunk's frame is stored in the frames bucket (``variant``: ``first``)."""
    suffix = f".{variant}" if variant else ""
    return (
        f"frames/{event.exam_id}/{event.student_id}/{event.source}/{event.sequence:06d}{suffix}.jpg"
    )


def _binding(first: dict[str, Any] | None) -> dict[str, Any] | None:
    """``first`` (the sequence's result row) when it binds the sequence to an object; None
    when there is none or it is parked (a parked row gives way to its replay)."""
    if first is None or (first.get("status"), first.get("error_reason")) == ("error", "parked"):
        return None
    return first


def another_object(first: dict[str, Any] | None, event: ChunkEvent, digest: str | None) -> bool:
    """Whether ``event`` is a different object than the one ``first`` (the sequence's result
    row) was written for: another key, or other bytes under the same key. A parked row gives
    way to its replay; a row without a hash (the object could not be read) is compared by key."""
    row = _binding(first)
    if row is None:
        return False
    if row.get("chunk_key") != event.key:
        return True
    known = row.get("chunk_sha256")
    return known is not None and digest is not None and known != digest


def _digest_to_extract(first: dict[str, Any] | None, event: ChunkEvent) -> str | None:
    """The SHA-256 the chunk's bytes must have to be extracted: the one ``first`` (the
    sequence's result row) was written for, when bytes of another hash would make the chunk
    another object (``another_object``); None when any bytes are extracted."""
    row = _binding(first)
    if row is None or row.get("chunk_key") != event.key:
        return None
    known = row.get("chunk_sha256")
    return None if known is None else str(known)


class KeptFrames:
    """Which chunks keep their frame as evidence, and the newest kept frame per source.

    A chunk keeps its frame when a rule fired on it (the alert names the frame), when speech
    was heard in it (TALKING is judged after the row is written, and its alert names the
    frame beside the audio), when it is the student's first of its source, or when ``every``
    chunks (the policy's ``frame_every``) passed since the newest kept one. The state (per
    source, the sequence of the newest kept frame) lives on the session (``frames``); the
    newest kept frame's key is the console tile's (``consumer.latest``).
    """

    def __init__(self, state: dict[str, int] | None, *, every: int) -> None:
        self._newest: dict[str, int] = {source: int(seq) for source, seq in (state or {}).items()}
        self._every = every

    def due(self, chunk: Chunk) -> bool:
        if chunk.analysed is not None and chunk.analysed.findings:
            return True
        if isinstance(chunk.heard, Speech) and chunk.heard.segments:
            return True  # TALKING may fire on it (judged after the row): its alert's frame
        newest = self._newest.get(chunk.event.source)
        return newest is None or chunk.event.sequence - newest >= self._every

    def kept(self, chunk: Chunk) -> None:
        """``chunk``'s frame was stored (a late chunk's does not make the newest older)."""
        source, sequence = chunk.event.source, chunk.event.sequence
        self._newest[source] = max(sequence, self._newest.get(source, sequence))

    def to_dict(self) -> dict[str, int]:
        return self._newest


class FrameStage:
    """See the module docstring. One per processor; its semaphore bounds the chunks in flight."""

    def __init__(
        self,
        *,
        settings: Settings,
        s3: Any,
        tables: Tables,
        policies: Policies,
        executor: Executor,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._s3 = s3
        self._tables = tables
        self._policies = policies
        self._executor = executor
        self._metrics = metrics
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._reads = CallGroups(executor, read_chunk, jobs=settings.cpu_workers)

    async def run(self, event: ChunkEvent, record: Record, *, new: bool = False) -> Chunk:
        """The chunk with its frame, or with why it has none (``error``, ``first``).

        ``new``: the student's kept session says no row of this sequence was written yet
        (``consumer.sessions``), so the sequence's result row is not read first. Should
        another writer have written one meanwhile, the conditional write of the row still
        finds it (``ChunkProcessor._apply``: a second object is flagged there, never alerted).
        """
        with structlog.contextvars.bound_contextvars(
            exam=event.exam_id, student=event.student_id, source=event.source, seq=event.sequence
        ):
            async with self._slots:
                try:
                    first = (
                        None
                        if new
                        else await self._tables.get_result(
                            event.session_id, f"{event.source}#{event.sequence:06d}"
                        )
                    )
                    other_key = another_object(first, event, None)  # no need to extract
                    same_as = _digest_to_extract(first, event)
                    started = time.perf_counter()
                    read = await self._read(
                        event,
                        position=self._settings.frame_position,
                        speech=(await self._policies.get(event.exam_id)).audio,
                        extract=not other_key,
                        same_as=same_as,
                    )
                    digest, version = read.digest, read.version
                    if another_object(first, event, digest):
                        return Chunk(event, record, digest=digest, version=version, first=first)
                    if read.error is not None:
                        raise read.error
                    frame = read.frame
                    assert frame is not None
                    self._metrics.add(  # the pool's job: queueing, the GET, the extraction
                        MetricName.FrameExtractionMs,
                        (time.perf_counter() - started) * 1000,
                        "Milliseconds",
                    )
                    self._metrics.add(MetricName.FramesDecoded, frame.decoded)
                except (FrameError, InvalidEvent) as exc:
                    return Chunk(event, record, error=exc)
                return Chunk(
                    event,
                    record,
                    frame=frame,
                    digest=digest,
                    version=version,
                    absent=first is None,
                    thumb=frame.thumb,
                    heard=read.heard,
                    fallback=self._first_frame(event)
                    if self._settings.frame_position == "middle" and frame.time > 0
                    else None,
                )

    @staticmethod
    def use_fallback(chunk: Chunk) -> Chunk:
        """The first frame was analysed instead of the middle one: it is the chunk's frame,
        stored (when it is) under a key of its own (``frame_key(event, "first")``)."""
        assert chunk.fallback is not None and chunk.fallback.frame is not None
        return replace(chunk, frame=chunk.fallback.frame, fallback_used=True)

    async def store(self, chunk: Chunk) -> Chunk:
        """Store the chunk's frame as evidence, once (``If-None-Match: *``): the chunk with
        its ``frame_key`` and the stored frame's hash and version."""
        assert chunk.frame is not None
        key = frame_key(chunk.event, "first" if chunk.fallback_used else "")
        digest, version = await self._store_evidence(key, chunk.frame.jpeg)
        return replace(chunk, frame_key=key, frame_digest=digest, frame_version=version)

    def _first_frame(self, event: ChunkEvent) -> FirstFrame:
        async def load() -> Frame:
            read = await self._read(event, position="first")
            if read.error is not None:
                raise read.error
            assert read.frame is not None
            return read.frame

        return FirstFrame(load)

    async def _store_evidence(self, key: str, jpeg: bytes) -> tuple[str, str | None]:
        """Store a frame unless its key exists (``If-None-Match: *``); its SHA-256 and version.

        When the key exists (a re-delivery of the same chunk), the stored frame stays and
        its own hash is returned: the evidence is whatever was written first.
        """
        bucket = self._settings.names.frames_bucket
        try:
            response = await self._call(
                self._s3.put_object(
                    Bucket=bucket, Key=key, Body=jpeg, ContentType="image/jpeg", IfNoneMatch="*"
                )
            )
            return hashlib.sha256(jpeg).hexdigest(), response.get("VersionId")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
                raise
        existing = await self._call(self._s3.get_object(Bucket=bucket, Key=key))
        async with existing["Body"] as body:
            stored: bytes = await body.read()
        digest = hashlib.sha256(stored).hexdigest()
        if stored != jpeg:
            _log.warning("evidence frame kept: this delivery's frame differs", frame=key)
            self._metrics.add(MetricName.EvidenceKept)
        return digest, existing.get("VersionId")

    async def _read(
        self,
        event: ChunkEvent,
        *,
        position: Literal["first", "middle"],
        speech: bool = False,
        extract: bool = True,
        same_as: str | None = None,
    ) -> Read:
        """The ``read_chunk`` job's result for the chunk; a failed GET raised as what it
        stands for (``consumer.chunk_get.failure``: bad input or AWS unavailable)."""
        limit = self._settings.max_chunk_bytes
        if event.size > limit:
            raise FrameError(
                f"chunk is {event.size} bytes, over the {limit} limit", reason="too_large"
            )
        get = await self._call(
            presign(
                self._s3,
                event.bucket,
                event.key,
                limit=limit,
                seconds=self._settings.call_timeout,
            )
        )
        read: Read = await self._reads(
            get,
            max_pixels=self._settings.max_frame_pixels,
            position=position,
            speech=speech,
            extract=extract,
            same_as=same_as,
        )
        # the requests the worker sent count as this client's (RequestCounter)
        await self._s3.meta.events.emit(f"{SENT_ELSEWHERE}.s3.GetObject", count=read.requests)
        if read.failed is not None:
            raise failure(read.failed, get)
        return read

    async def _call(self, awaitable: Any) -> Any:
        async with asyncio.timeout(self._settings.call_timeout):
            return await awaitable

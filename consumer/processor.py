"""The record-processing core: one batch of Kinesis records in, durable effects out.

It does not know how shards are read or leased (``consumer.worker`` does);
it takes a batch and returns when every effect is durable, so the caller
may checkpoint. Per batch:

1. parse and validate every record (a bad one becomes an error record);
2. drop duplicates inside the batch;
3. per chunk, concurrently (bounded): GET the chunk, extract one upright
   frame (the middle one by default) and its thumbnail in the process pool
   (with the policy's ``audio: true``, the speech in its audio track too,
   ``consumer.speech``), store the JPEG - with ``PROCTOR_EXAM_GATE`` only for
   started exams: a chunk of a stopped, not yet started or unknown exam gets a
   ``not_analysed`` result row and nothing else; so does a camera or chime chunk
   whose source the exam's policy does not analyse (``sources``: browser, chime or both);
4. per student, in sequence order: analyse the frame as the schedule says
   (``consumer.analyser``: repeats carried over, identity and objects on
   their cadence; with ``sources: both`` a moment already analysed from the
   other source is not analysed again), write the result row, apply the rules with the exam's
   policy and the state stored in the student's session, create each new
   alert once (deterministic id), publish it to the FIFO alerts topic
   (deduplicated by alert id), save the state, the schedule, the call
   counts and the risk score; judge the chunk's speech (TALKING).

Evidence is written once. A chunk's result row is written only if absent and
carries the SHA-256 of the bytes analysed (``chunk_sha256``) and the S3
version read; its frame is stored with ``If-None-Match: *``, and its hash
(``frame_sha256``) goes on the row and on every alert raised from it. A
re-delivery of the same chunk (at-least-once: a worker died mid-batch) finds
the same bytes and changes nothing. A *different* object for a sequence that
already has a result row - another key, or other bytes under the same key -
is never analysed: of a student's own sources (camera, screen) it is recorded
as tampering (a high-severity
``CHUNK_REPLACED`` alert pointing at the first evidence, an errors row with
``reason = second_object``, the ``ChunksReplaced`` metric) and the first
row, frame and alert stay as they were. (Two ``chime`` objects on one moment
are the capture pipeline's, not a student's: the second is skipped, unflagged.)

Bad input (malformed event, empty, non-video or truncated chunk, missing
object) is recorded - log line, ``ChunkErrors`` metric, a row in the errors
table and, for a chunk, a result row with ``status = error`` - and the rest
of the batch goes on. Infrastructure failures (after botocore's retries, or
Rekognition still throttling past the budget's backoff) raise, so the batch
is not checkpointed and is processed again; every effect is idempotent, so
that is safe.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from consumer.analyser import Analysed, Policies, StudentAnalyser
from consumer.integrity import IntegrityEvents
from consumer.outbox import AlertPublisher
from consumer.outlet import Outlet
from consumer.speech import Heard, StudentSpeech, hear, speech_fields
from proctoring.analysis.base import AnalysisError, Engine, FrameAnalysis
from proctoring.analysis.faces import ImageError
from proctoring.analysis.scheduling import thumbnail
from proctoring.aws import AsyncClients
from proctoring.enrolment import read_frame
from proctoring.errors import ProctoringError
from proctoring.events import ChunkEvent, InvalidEvent
from proctoring.exams import ExamStore
from proctoring.frames import Frame, FrameError, extract_frame
from proctoring.integrity import IntegrityEvent, parse_record
from proctoring.metrics import Metrics
from proctoring.rules import Finding
from proctoring.settings import Settings
from proctoring.storage import StorageError, Tables

__all__ = ["BatchFailed", "BatchOutcome", "ChunkProcessor", "Record"]

_log = structlog.get_logger(__name__)
_RAW_PREVIEW = 512
REPLACED = "CHUNK_REPLACED"
"""The alert type of a second object uploaded for a sequence that has its result."""
_VIDEO_SOURCES = ("camera", "chime")  # analysed as the policy says; screen is only recorded
_MOMENTS_KEPT = 720  # an hour of 5 s moments remembered per student for sources: both


class BatchFailed(ProctoringError):
    """The batch must be processed again.

    ``poison`` tells why it failed: ``False`` when AWS was unavailable (throttled,
    timed out, unreachable, refused) - processing again will succeed once it is
    back, however long that takes; ``True`` when the failure belongs to the
    records themselves (AWS rejected the request as invalid, or the pipeline hit
    an error no check anticipated) - processing again may never succeed, so the
    caller parks the record after a bounded number of attempts
    (``consumer.poison``).
    """

    def __init__(self, message: str, *, poison: bool = False) -> None:
        super().__init__(message)
        self.poison = poison


# AWS error codes about the request itself: sending it again cannot succeed.
_REQUEST_ERRORS = frozenset(
    {
        "ValidationException",
        "SerializationException",
        "InvalidParameter",
        "InvalidParameterException",
        "InvalidParameterValue",
        "InvalidParameterValueException",
        "InvalidImageFormatException",
        "ImageTooLargeException",
        "ItemCollectionSizeLimitExceededException",
        "InvalidArgument",
        "InvalidRequest",
        "EntityTooLarge",
        "KeyTooLongError",
    }
)
_UNAVAILABLE = (BotoCoreError, TimeoutError, OSError, AnalysisError)


def is_poison(exc: BaseException) -> bool:
    """Whether a failure belongs to the records (True) or to AWS's availability (False)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_poison(e) for e in exc.exceptions)
    if isinstance(exc, StorageError) and exc.__cause__ is not None:
        return is_poison(exc.__cause__)
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") in _REQUEST_ERRORS
    return not isinstance(exc, (*_UNAVAILABLE, StorageError))


@dataclass(frozen=True)
class Record:
    """A Kinesis record as the processor needs it."""

    sequence_number: str
    data: bytes
    partition_key: str = ""


@dataclass
class BatchOutcome:
    results: int = 0
    errors: int = 0
    duplicates: int = 0
    alerts: int = 0
    parked: int = 0

    def __add__(self, other: BatchOutcome) -> BatchOutcome:
        return BatchOutcome(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(BatchOutcome))
        )


@dataclass(frozen=True)
class _Chunk:
    event: ChunkEvent
    record: Record
    frame: Frame | None = None
    frame_key: str | None = None
    thumb: bytes | None = None
    fallback: _FirstFrame | None = None
    analysed: Analysed | None = None
    error: FrameError | InvalidEvent | None = None
    digest: str | None = None  # SHA-256 of the chunk's bytes as read
    version: str | None = None  # the S3 version read (versioned bucket)
    frame_digest: str | None = None
    frame_version: str | None = None
    first: dict[str, Any] | None = None  # the sequence's earlier result: this is a second object
    heard: Heard = None  # the speech in its audio track (policy ``audio: true``)


def _frame_and_thumbnail(
    data: bytes, *, max_pixels: int, position: Literal["first", "middle"], speech: bool = False
) -> tuple[Frame, bytes, Heard]:
    """Process-pool job: the frame to analyse, its 32x32 grey thumbnail (for the schedule)
    and, when asked, the speech in the chunk's audio."""
    frame = extract_frame(data, max_pixels=max_pixels, position=position)
    return frame, thumbnail(frame.jpeg), hear(data) if speech else None


class _FirstFrame:
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


class ChunkProcessor:
    """Turns batches of chunk events into results, alerts and error records."""

    def __init__(
        self,
        *,
        settings: Settings,
        clients: AsyncClients,
        tables: Tables,
        engine: Engine,
        executor: Executor,
        metrics: Metrics,
        topic_arn: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._s3 = clients.s3
        self._publisher = AlertPublisher(
            clients.sns, tables, topic_arn, timeout=settings.call_timeout
        )
        self._tables = tables
        self._engine = engine
        self._executor = executor
        self._metrics = metrics
        self._clock = clock
        self._policies = Policies(
            tables, tolerance=settings.tolerance, ttl=settings.policy_cache_seconds
        )
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._exams = ExamStore(clients.dynamodb, settings.names, timeout=settings.call_timeout)
        self._outlet = Outlet(metrics, self._deliver, self._record_error, self._now, self._expiry)
        self._integrity = IntegrityEvents(  # the stream's second event type (consumer.integrity)
            tables=tables, policies=self._policies, outlet=self._outlet
        )

    async def process(self, records: Sequence[Record], *, shard_id: str) -> BatchOutcome:
        """Process one batch; return only when all its effects are durable.

        Raises BatchFailed when AWS kept failing; nothing is lost then, since
        every effect is idempotent and the caller processes the batch again.
        """
        try:
            return await self._process(records, shard_id)
        except* Exception as group:
            first = group.exceptions[0]
            raise BatchFailed(
                f"batch of {len(records)} records on {shard_id}: {first!r}",
                poison=is_poison(group),
            ) from group

    async def _process(self, records: Sequence[Record], shard_id: str) -> BatchOutcome:
        outcome = BatchOutcome()
        self._metrics.add("BatchSize", len(records))
        chunks: dict[tuple[str, str, int], tuple[ChunkEvent, Record]] = {}
        integrity: list[tuple[IntegrityEvent, str]] = []
        for record in records:
            try:
                event = parse_record(record.data)
                if isinstance(event, IntegrityEvent):
                    integrity.append((event, record.sequence_number))
                    continue
                if event.bucket != self._settings.names.chunks_bucket:
                    raise InvalidEvent(
                        f"event names bucket {event.bucket!r}, not the chunks bucket",
                        reason="foreign_bucket",
                    )
            except InvalidEvent as exc:
                await self._record_bad_event(record, exc, shard_id)
                outcome.errors += 1
                continue
            identity = (event.session_id, event.source, event.sequence)
            if identity in chunks:
                earlier = chunks[identity][0]
                if (earlier.key, earlier.size) != (event.key, event.size):
                    # two objects for one sequence in one batch: the second is never analysed
                    flagged = await self._second_object(
                        _Chunk(event, record), {"chunk_key": earlier.key}
                    )
                    outcome.errors += int(flagged)
                    outcome.alerts += int(flagged)
                    outcome.duplicates += int(not flagged)
                    continue
                outcome.duplicates += 1
                continue
            chunks[identity] = (event, record)

        if self._settings.exam_gate:
            chunks = await self._gate(chunks, outcome)
        chunks = await self._by_policy(chunks, outcome)
        analysed = await self._gather(
            [self._analyse(event, record) for event, record in chunks.values()]
        )
        by_student: dict[tuple[str, str], list[_Chunk]] = defaultdict(list)
        for chunk in analysed:
            by_student[(chunk.event.exam_id, chunk.event.student_id)].append(chunk)
        for counts in await self._gather(
            [self._apply(student_chunks) for student_chunks in by_student.values()]
        ):
            outcome.results += counts.results
            outcome.errors += counts.errors
            outcome.alerts += counts.alerts
        if integrity:  # after the chunks: one writer of a student's session at a time
            counted = await self._integrity.apply(integrity)
            outcome.results += counted.results
            outcome.errors += counted.errors
            outcome.duplicates += counted.duplicates
            outcome.alerts += counted.alerts
        self._metrics.flush()
        return outcome

    async def _gate(
        self, chunks: dict[Any, tuple[ChunkEvent, Record]], outcome: BatchOutcome
    ) -> dict[Any, tuple[ChunkEvent, Record]]:
        """Keep the chunks of started exams; record the others with a ``not_analysed`` row."""
        statuses = {
            exam_id: await self._exams.status(exam_id)
            for exam_id in {event.exam_id for event, _ in chunks.values()}
        }
        kept = {}
        for identity, (event, record) in chunks.items():
            status = statuses[event.exam_id]
            if status == "started":
                kept[identity] = (event, record)
                continue
            reason = "unknown_exam" if status is None else f"exam_{status}"  # created or stopped
            now = self._now()
            await self._tables.put_result(
                self._result_row(event, now, status="not_analysed", reason=reason)
            )
            outcome.results += 1
            self._metrics.add("ChunksNotAnalysed", Reason=reason)
            _log.info(
                "chunk recorded, not analysed",
                exam=event.exam_id,
                student=event.student_id,
                seq=event.sequence,
                reason=reason,
            )
        return kept

    async def _by_policy(
        self, chunks: dict[Any, tuple[ChunkEvent, Record]], outcome: BatchOutcome
    ) -> dict[Any, tuple[ChunkEvent, Record]]:
        """Keep the chunks of sources the exam's policy analyses; record the others."""
        kept = {}
        for identity, (event, record) in chunks.items():
            policy = await self._policies.get(event.exam_id)
            if event.source not in _VIDEO_SOURCES or policy.analyses(event.source):
                kept[identity] = (event, record)
                continue
            await self._tables.put_result(
                self._result_row(event, self._now(), status="not_analysed", reason="source_off")
            )
            outcome.results += 1
            self._metrics.add("ChunksNotAnalysed", Reason="source_off")
            _log.info(
                "chunk recorded, not analysed",
                exam=event.exam_id,
                student=event.student_id,
                source=event.source,
                seq=event.sequence,
                reason="source_off",
            )
        return kept

    @staticmethod
    async def _gather(coroutines: Sequence[Any]) -> list[Any]:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coroutines]
        return [t.result() for t in tasks]

    # ---- stage 1: per chunk, concurrent -------------------------------------------
    async def _analyse(self, event: ChunkEvent, record: Record) -> _Chunk:
        with structlog.contextvars.bound_contextvars(
            exam=event.exam_id, student=event.student_id, source=event.source, seq=event.sequence
        ):
            async with self._slots:
                try:
                    data, version = await self._fetch(event)
                    digest = hashlib.sha256(data).hexdigest()
                    first = await self._tables.get_result(
                        event.session_id, f"{event.source}#{event.sequence:06d}"
                    )
                    if _another_object(first, event, digest):
                        return _Chunk(event, record, digest=digest, version=version, first=first)
                    loop = asyncio.get_running_loop()
                    started = time.perf_counter()
                    frame, thumb, heard = await loop.run_in_executor(
                        self._executor,
                        functools.partial(
                            _frame_and_thumbnail,
                            data,
                            max_pixels=self._settings.max_frame_pixels,
                            position=self._settings.frame_position,
                            speech=(await self._policies.get(event.exam_id)).audio,
                        ),
                    )
                    self._metrics.add(
                        "FrameExtractionMs", (time.perf_counter() - started) * 1000, "Milliseconds"
                    )
                except (FrameError, InvalidEvent) as exc:
                    return _Chunk(event, record, error=exc)
                frame_key = _frame_key(event)
                frame_digest, frame_version = await self._store_evidence(frame_key, frame.jpeg)
                return _Chunk(
                    event,
                    record,
                    frame=frame,
                    frame_key=frame_key,
                    digest=digest,
                    version=version,
                    frame_digest=frame_digest,
                    frame_version=frame_version,
                    thumb=thumb,
                    heard=heard,
                    fallback=self._first_frame(event)
                    if self._settings.frame_position == "middle" and frame.time > 0
                    else None,
                )

    def _first_frame(self, event: ChunkEvent) -> _FirstFrame:
        async def load() -> Frame:
            data, _ = await self._fetch(event)
            loop = asyncio.get_running_loop()
            frame: Frame = await loop.run_in_executor(
                self._executor,
                functools.partial(
                    extract_frame,
                    data,
                    max_pixels=self._settings.max_frame_pixels,
                    position="first",
                ),
            )
            return frame

        return _FirstFrame(load)

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
            self._metrics.add("EvidenceKept")
        return digest, existing.get("VersionId")

    async def _fetch(self, event: ChunkEvent) -> tuple[bytes, str | None]:
        """The chunk's bytes and the S3 version they are (None in an unversioned bucket)."""
        limit = self._settings.max_chunk_bytes
        if event.size > limit:
            raise FrameError(
                f"chunk is {event.size} bytes, over the {limit} limit", reason="too_large"
            )
        try:
            response = await self._call(self._s3.get_object(Bucket=event.bucket, Key=event.key))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404", "NoSuchBucket"):
                raise FrameError(
                    f"chunk s3://{event.bucket}/{event.key} does not exist ({code})",
                    reason="missing_object",
                ) from exc
            raise
        if response["ContentLength"] > limit:
            response["Body"].close()
            raise FrameError(
                f"chunk is {response['ContentLength']} bytes, over the {limit} limit",
                reason="too_large",
            )
        async with response["Body"] as body:
            data: bytes = await body.read()
        version = response.get("VersionId")
        return data, None if version in (None, "null") else str(version)

    async def _call(self, awaitable: Any) -> Any:
        async with asyncio.timeout(self._settings.call_timeout):
            return await awaitable

    # ---- stage 2: per student, in order ------------------------------------------
    async def _apply(self, chunks: list[_Chunk]) -> BatchOutcome:
        counts = BatchOutcome()
        chunks.sort(key=lambda c: (c.event.source, c.event.sequence))
        first = chunks[0].event
        session = await self._tables.get_session(first.exam_id, first.student_id) or {
            "exam_id": first.exam_id,
            "student_id": first.student_id,
            "version": 0,
        }
        analyser = StudentAnalyser(
            engine=self._engine,
            settings=self._settings,
            policy=await self._policies.get(first.exam_id),
            session=session,
            metrics=self._metrics,
            enrolment=self._enrolment_view,
        )
        moments: dict[str, str] = dict(session.get("moments", {}))
        speech = StudentSpeech(state=analyser.speech, policy=analyser.policy, outlet=self._outlet)
        for chunk in chunks:
            event = chunk.event
            with structlog.contextvars.bound_contextvars(
                exam=event.exam_id,
                student=event.student_id,
                source=event.source,
                seq=event.sequence,
            ):
                if chunk.first is not None:  # a second object: recorded, never analysed
                    flagged = await self._second_object(chunk, chunk.first)
                    counts.errors += int(flagged)
                    counts.alerts += int(flagged)
                    continue
                if (
                    chunk.error is None
                    and event.source in _VIDEO_SOURCES
                    and analyser.policy.sources == "both"
                ):
                    chunk_id = f"{event.source}#{event.sequence:06d}"
                    claimed = moments.setdefault(str(event.moment), chunk_id)
                    if claimed != chunk_id:  # seen from the other source: analysed once
                        await self._same_moment(chunk, claimed)
                        counts.results += 1
                        continue
                if chunk.error is None and event.source in _VIDEO_SOURCES:
                    assert chunk.frame is not None
                    chunk = replace(
                        chunk,
                        analysed=await analyser.analyse(
                            event,
                            chunk.frame.jpeg,
                            chunk.thumb,
                            chunk.fallback.jpeg if chunk.fallback else None,
                        ),
                    )
                    if chunk.analysed is not None and chunk.analysed.used_fallback:
                        chunk = await self._store_fallback(chunk)
                earlier = await self._write_result(chunk)
                if earlier is not None and _another_object(earlier, event, chunk.digest):
                    await self._second_object(chunk, earlier)  # lost a race to another object
                    counts.errors += 1
                    continue
                counts.results += 1
                if chunk.error is not None:
                    await self._record_bad_chunk(chunk)
                    counts.errors += 1
                    continue
                for finding in chunk.analysed.findings if chunk.analysed else []:
                    await self._raise_alert(chunk, finding)
                    counts.alerts += 1
                counts.alerts += await speech.judge(
                    event,
                    chunk.heard,
                    sequence_number=chunk.record.sequence_number,
                    evidence={
                        "chunk_sha256": chunk.digest,
                        "chunk_version": chunk.version,
                        "frame_key": chunk.frame_key,
                    },
                )
        analyser.speech = speech.state
        session.update(analyser.session_fields())
        if moments:
            newest = sorted(moments, key=int)[-_MOMENTS_KEPT:]
            session["moments"] = {m: moments[m] for m in newest}
        session["updated_at"] = self._now().isoformat()
        version = int(session.pop("version", 0))
        await self._tables.save_session(session, expected_version=version)
        return counts

    async def _enrolment_view(self, event: ChunkEvent) -> FrameAnalysis | None:
        """The engine's local view of the student's registration frame, if one is kept."""
        try:
            async with asyncio.timeout(self._settings.call_timeout):
                frame = await read_frame(
                    self._s3, self._settings.names.frames_bucket, event.exam_id, event.student_id
                )
        except TimeoutError:
            _log.warning("enrolment frame unreadable", error="TimeoutError")
            return None
        if frame is None:
            return None
        try:
            return await self._engine.describe(frame)
        except ImageError as exc:
            _log.warning("enrolment frame unusable", reason=exc.reason)
            return None

    async def _same_moment(self, chunk: _Chunk, analysed: str) -> None:
        """A chunk of a moment the other source covered: recorded, with the frame, not analysed."""
        event = chunk.event
        await self._tables.put_result(
            self._result_row(
                event,
                self._now(),
                status="not_analysed",
                reason="same_moment",
                same_as=analysed,
                frame_key=chunk.frame_key,
            )
        )
        self._metrics.add("ChunksNotAnalysed", Reason="same_moment")
        _log.info("chunk recorded, not analysed", reason="same_moment", same_as=analysed)

    async def _store_fallback(self, chunk: _Chunk) -> _Chunk:
        """The first frame was analysed instead of the middle one: it is the evidence, under
        a key of its own (the middle frame's is written once and stays)."""
        assert chunk.fallback is not None and chunk.fallback.frame is not None
        key = _frame_key(chunk.event, "first")
        digest, version = await self._store_evidence(key, chunk.fallback.frame.jpeg)
        return replace(
            chunk,
            frame=chunk.fallback.frame,
            frame_key=key,
            frame_digest=digest,
            frame_version=version,
        )

    async def _write_result(self, chunk: _Chunk) -> dict[str, Any] | None:
        """Write the chunk's result row unless it has one; the row that was there, if any."""
        event = chunk.event
        now = self._now()
        row = self._result_row(
            event, now, latency_ms=round((now - event.uploaded_at).total_seconds() * 1000)
        )
        row.update(chunk_sha256=chunk.digest, chunk_version=chunk.version)
        if chunk.error is not None:
            row.update(status="error", error_reason=chunk.error.reason, error=str(chunk.error))
        else:
            assert chunk.frame is not None
            row.update(status="ok", frame_key=chunk.frame_key, rotation=chunk.frame.rotation)
            row.update(frame_sha256=chunk.frame_digest, frame_version=chunk.frame_version)
            row["frame_time"] = round(chunk.frame.time, 3)
            if chunk.analysed is not None:
                row.update(chunk.analysed.row)
            if chunk.heard is not None and not isinstance(chunk.heard, Exception):
                row.update(speech_fields(chunk.heard))
        first = await self._tables.put_result(row)
        if first is not None:  # processed again (at least once), or a second object
            self._metrics.add("ChunksRedelivered")
            _log.info(
                "chunk processed",
                status=first.get("status"),
                kept=True,  # the row written first stays as it was
                latency_ms=row["latency_ms"],
            )
            return first
        self._metrics.add("ChunksProcessed")
        self._metrics.add("ChunkLatencyMs", row["latency_ms"], "Milliseconds")
        _log.info(
            "chunk processed",
            status=row["status"],
            faces=row.get("faces"),
            identity=row.get("identity"),
            latency_ms=row["latency_ms"],
        )
        return None

    async def _raise_alert(self, chunk: _Chunk, finding: Finding) -> None:
        event = chunk.event
        analysis = chunk.analysed.analysis if chunk.analysed else None
        alert = self._outlet.alert(
            event.exam_id,
            event.student_id,
            event.source,
            finding,
            frame_key=chunk.frame_key,
            frame_sha256=chunk.frame_digest,
            frame_version=chunk.frame_version,
            chunk_key=event.key,
            chunk_sha256=chunk.digest,
            chunk_version=chunk.version,
            faces=len(analysis.faces) if analysis else None,
            distance=None
            if analysis is None or analysis.distance is None
            else round(analysis.distance, 4),
            evidence=_evidence(chunk.analysed.row) if chunk.analysed else None,
            frame_time=round(chunk.frame.time, 3) if chunk.frame else None,
            risk=chunk.analysed.row.get("risk") if chunk.analysed else None,
        )
        if await self._outlet.raise_alert(alert, first=finding.first_sequence):
            self._metrics.add(  # S3 ObjectCreated of the raising chunk -> alert published
                "AlertLatencyMs",
                (self._now() - event.uploaded_at).total_seconds() * 1000,
                "Milliseconds",
            )

    async def _second_object(self, chunk: _Chunk, first: dict[str, Any]) -> bool:
        """Record a second object for a sequence; True when it was flagged as tampering.

        Only what students write (``camera``, ``screen``: presigned forms) can be tampering.
        The Chime capture pipeline writes ``chime`` objects itself, and two of them may fall
        on one 5 s moment (a re-joined attendee, a chunk boundary): the first stays, the
        second is left unanalysed with a log line and ``ChunksNotAnalysed``, no alert.
        """
        if chunk.event.source == "chime":
            self._metrics.add("ChunksNotAnalysed", Reason="moment_taken")
            _log.info(
                "chunk recorded, not analysed",
                reason="moment_taken",
                key=chunk.event.key,
                first=first.get("chunk_key"),
            )
            return False
        await self._record_replacement(chunk, first)
        return True

    async def _record_replacement(self, chunk: _Chunk, first: dict[str, Any]) -> None:
        """A second object for a sequence: an alert pointing at the first evidence, an errors
        row naming both objects, the ``ChunksReplaced`` metric. Nothing is analysed."""
        event = chunk.event
        finding = Finding(REPLACED, "high", event.sequence, event.sequence, 1)
        what = (
            f"a second object for {event.source} chunk {event.sequence}: "
            f"{event.key} after {first.get('chunk_key')}"
        )
        alert = self._outlet.alert(
            event.exam_id,
            event.student_id,
            event.source,
            finding,
            # the evidence stays the first object's; the second is named beside it
            frame_key=first.get("frame_key"),
            frame_sha256=first.get("frame_sha256"),
            frame_version=first.get("frame_version"),
            chunk_key=first.get("chunk_key"),
            chunk_sha256=first.get("chunk_sha256"),
            chunk_version=first.get("chunk_version"),
            replaced_by={
                "chunk_key": event.key,
                "chunk_sha256": chunk.digest,
                "chunk_version": chunk.version,
                "size": event.size,
            },
            evidence={"message": what},
        )
        await self._record_error(
            exam_id=event.exam_id,
            error_id=f"replaced#{event.student_id}#{event.source}#{event.sequence:06d}#"
            f"{(chunk.digest or event.key)[-16:]}",
            stage="chunk",
            reason="second_object",
            message=what,
            student_id=event.student_id,
            chunk_key=event.key,
            first_chunk_key=first.get("chunk_key"),
            sequence_number=chunk.record.sequence_number,
        )
        self._metrics.add("ChunksReplaced")
        if not await self._deliver(alert):
            return
        self._metrics.add("AlertsRaised", Rule=REPLACED)
        _log.warning("second object for a chunk", alert=alert["alert_id"], key=event.key)

    async def _deliver(self, alert: dict[str, Any]) -> bool:
        """Create the alert once and publish it; False when a replay finds it published."""
        if not await self._tables.create_alert(alert):
            existing = await self._tables.get_alert(alert["exam_id"], alert["alert_id"])
            if existing is None or existing.get("published"):
                return False
            alert = existing
        await self._publisher.publish(alert)
        return True

    # ---- poison ---------------------------------------------------------------------
    async def park(
        self, record: Record, *, shard_id: str, error: BaseException, attempts: int
    ) -> None:
        """Set aside a record that kept failing, so that the shard moves on.

        The errors table gets a ``stage = parked`` row with the whole record
        (``proctor parked replay`` puts it back on the stream); for a chunk,
        its result row says ``status = error`` so the student's timeline shows
        the gap instead of hiding it.
        """
        try:
            event: ChunkEvent | None = ChunkEvent.from_bytes(record.data)
        except InvalidEvent:
            event = None
        exam_id = event.exam_id if event else "_unknown"
        now = self._now()
        if event is not None:  # best effort: the errors row below is the record that counts
            with contextlib.suppress(StorageError, ClientError):
                await self._tables.put_result(
                    self._result_row(
                        event,
                        now,
                        status="error",
                        error_reason="parked",
                        error=f"processing failed {attempts} times; parked for replay",
                    )
                )
        row = {
            "exam_id": exam_id,
            "error_id": f"parked#{shard_id}#{record.sequence_number}",
            "stage": "parked",
            "reason": "poison",
            "message": repr(error)[:2000],
            "attempts": attempts,
            "shard_id": shard_id,
            "sequence_number": record.sequence_number,
            "partition_key": record.partition_key,
            "data": base64.b64encode(record.data).decode("ascii"),
            "student_id": event.student_id if event else None,
            "chunk_key": event.key if event else None,
            "created_at": now.isoformat(),
            "expires_at": self._expiry(now),
        }
        await self._tables.put_error({k: v for k, v in row.items() if v is not None})
        self._metrics.add("RecordsParked")
        _log.error(
            "record parked",
            shard=shard_id,
            sequence_number=record.sequence_number,
            attempts=attempts,
            error=repr(error)[:500],
        )

    # ---- bad input ----------------------------------------------------------------
    async def _record_bad_event(self, record: Record, exc: InvalidEvent, shard_id: str) -> None:
        exam_id = record.partition_key.split("#", 1)[0] or "_unknown"
        if len(exam_id) > 64 or not exam_id.isprintable():
            exam_id = "_unknown"
        await self._record_error(
            exam_id=exam_id,
            error_id=f"event#{shard_id}#{record.sequence_number}",
            stage="event",
            reason=exc.reason,
            message=str(exc),
            raw=record.data[:_RAW_PREVIEW].decode("utf-8", "replace"),
            shard_id=shard_id,
            sequence_number=record.sequence_number,
        )

    async def _record_bad_chunk(self, chunk: _Chunk) -> None:
        assert chunk.error is not None
        event = chunk.event
        await self._record_error(
            exam_id=event.exam_id,
            error_id=f"chunk#{event.student_id}#{event.source}#{event.sequence:06d}",
            stage="chunk",
            reason=chunk.error.reason,
            message=str(chunk.error),
            student_id=event.student_id,
            chunk_key=event.key,
            sequence_number=chunk.record.sequence_number,
        )

    async def _record_error(self, *, reason: str, message: str, **fields: Any) -> None:
        now = self._now()
        await self._tables.put_error(
            {
                **fields,
                "reason": reason,
                "message": message,
                "created_at": now.isoformat(),
                "expires_at": self._expiry(now),
            }
        )
        self._metrics.add("ChunkErrors", Reason=reason)
        _log.error("bad input", reason=reason, error=message, stage=fields.get("stage"))

    def _result_row(self, event: ChunkEvent, now: datetime, **fields: Any) -> dict[str, Any]:
        """A chunk's result row: where the chunk is and when it came, then ``fields``."""
        return {
            "session_id": event.session_id,
            "chunk_id": f"{event.source}#{event.sequence:06d}",
            "exam_id": event.exam_id,
            "student_id": event.student_id,
            "source": event.source,
            "sequence": event.sequence,
            "chunk_key": event.key,
            "captured_at": event.captured_at.isoformat(),
            "uploaded_at": event.uploaded_at.isoformat(),
            "processed_at": now.isoformat(),
            "expires_at": self._expiry(now),
            **fields,
        }

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)

    def _expiry(self, now: datetime) -> int:
        return int((now + timedelta(days=self._settings.retention_days)).timestamp())


def _frame_key(event: ChunkEvent, variant: str = "") -> str:
    suffix = f".{variant}" if variant else ""
    return (
        f"frames/{event.exam_id}/{event.student_id}/{event.source}/{event.sequence:06d}{suffix}.jpg"
    )


def _another_object(first: dict[str, Any] | None, event: ChunkEvent, digest: str | None) -> bool:
    """Whether ``event`` is a different object than the one ``first`` (the sequence's result
    row) was written for: another key, or other bytes under the same key. A parked row gives
    way to its replay; a row without a hash (the object could not be read) is compared by key."""
    if first is None or (first.get("status"), first.get("error_reason")) == ("error", "parked"):
        return False
    if first.get("chunk_key") != event.key:
        return True
    known = first.get("chunk_sha256")
    return known is not None and digest is not None and known != digest


def _evidence(row: dict[str, Any]) -> dict[str, Any]:
    """What the proctor sees beside the frame: the face details, identity (with the distance
    to the registered face, the threshold and the margin between them), people, objects,
    and which frame decided the chunk (``analysed``: its middle frame, its first frame where
    the middle one was in doubt, or a repeat of chunk ``repeat_of``)."""
    return {
        key: row[key]
        for key in (
            "analysed",
            "repeat_of",
            "face_details",
            "identity",
            "distance",
            "threshold",
            "margin",
            "persons",
            "objects",
            "similarity",
        )
        if row.get(key) not in (None, [], {})
    }

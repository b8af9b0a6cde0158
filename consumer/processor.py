"""The record-processing core: one batch of Kinesis records in, durable effects out.

It does not know how shards are read or leased (``consumer.worker`` does); it takes a batch
and returns when every effect is durable, so the caller may checkpoint. ``ChunkProcessor``
is the orchestration, read top to bottom; each stage is a module of its own. Per batch:

1. parse and validate every record (a bad one becomes an errors row, ``consumer.error_rows``);
   integrity events go to ``consumer.integrity``;
2. drop duplicates inside the batch (two objects for one sequence: the second is a second
   object, ``consumer.results``);
3. with ``PROCTOR_EXAM_GATE`` only for started exams: a chunk of a stopped, not
   yet started or unknown exam gets a ``not_analysed`` result row and nothing
   else; so does a camera or chime chunk whose source the exam's policy does not
   analyse (``sources``: browser, chime or both);
4. per student, concurrently, the student's chunks concurrently (bounded;
   ``consumer.frame_stage``; a student's analysis waits for its own frames, not the batch's
   slowest): GET the chunk, extract one upright frame (the middle one by default) and its
   thumbnail in the process pool (with the policy's ``audio: true``, the speech in its
   audio track too, ``consumer.speech``);
5. per student, in sequence order (``ChunkProcessor._apply``): analyse the frame as the
   schedule says (``consumer.analyser``: repeats carried over, identity and objects on
   their cadence; with ``sources: both`` a moment already analysed from the other source
   is not analysed again), store the frame when it is needed (``consumer.frame_stage.
   KeptFrames``), apply the rules with the exam's policy and the student's session,
   create each new alert once (deterministic id) and publish it to the FIFO alerts topic
   (``consumer.outbox``), judge the speech (TALKING); then write the new rows with the
   session (rule state, schedule, calls, risk, the console's tile: ``consumer.latest``)
   in one transaction with other students' (``consumer.sessions``: ``SaveGroup``).

Evidence is written once (``consumer.results``): result rows only if absent, with
the hashes and versions of the chunk and frame read; a re-delivery changes nothing,
and a different object for an analysed sequence is flagged, never analysed.

Bad input (malformed event, empty, non-video or truncated chunk, missing object) is
recorded - log line, ``ChunkErrors`` metric, a row in the errors table and, for a chunk, a
result row with ``status = error`` - and the rest of the batch goes on. Infrastructure
failures (after botocore's retries, or Rekognition still throttling past the budget's
backoff) raise ``BatchFailed`` (``consumer.batch``), so the batch is not checkpointed and
is processed again; every effect is idempotent, so that is safe. A record that keeps
failing is parked (``ChunkProcessor.park``).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from consumer.analyser import Policies, StudentAnalyser, enrolment_view
from consumer.batch import BatchFailed, BatchOutcome, Record, is_poison
from consumer.error_rows import ErrorRows
from consumer.frame_stage import Chunk, FrameStage, KeptFrames, another_object
from consumer.integrity import IntegrityEvents
from consumer.latest import fold_latest
from consumer.outbox import AlertPublisher
from consumer.outlet import Outlet
from consumer.results import Results
from consumer.sessions import SaveGroup, SessionCache
from consumer.speech import StudentSpeech
from proctoring.analysis.base import Engine
from proctoring.aws import AsyncClients
from proctoring.events import ChunkEvent, InvalidEvent
from proctoring.exams import ExamStore
from proctoring.integrity import IntegrityEvent, parse_record
from proctoring.metric_names import MetricName
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import RESULTS_PER_SAVE, SessionSave, StorageError, Tables

# The batch's types live in consumer.batch; they are imported from here too.
__all__ = ["BatchFailed", "BatchOutcome", "ChunkProcessor", "Record", "is_poison"]

_log = structlog.get_logger(__name__)
_VIDEO_SOURCES = ("camera", "chime")  # analysed as the policy says; screen is only recorded
_MOMENTS_KEPT = 720  # an hour of 5 s moments remembered per student for sources: both
_Chunks = dict[tuple[str, str, int], tuple[ChunkEvent, Record]]
_Save = Callable[[SessionSave], Awaitable[Any]]  # a student's save with the batch's others


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
        self._tables = tables
        self._engine = engine
        self._metrics = metrics
        self._clock = clock
        self._policies = Policies(
            tables, tolerance=settings.tolerance, ttl=settings.policy_cache_seconds
        )
        self._exams = ExamStore(clients.dynamodb, settings.names, timeout=settings.call_timeout)
        self._errors = ErrorRows(tables=tables, metrics=metrics, now=self._now, expiry=self._expiry)
        publisher = AlertPublisher(clients.sns, tables, topic_arn, timeout=settings.call_timeout)
        self._outlet = Outlet(
            metrics, publisher.deliver, self._errors.record, self._now, self._expiry
        )
        self._frames = FrameStage(
            settings=settings,
            s3=clients.s3,
            tables=tables,
            policies=self._policies,
            executor=executor,
            metrics=metrics,
        )
        self._results = Results(tables=tables, metrics=metrics, outlet=self._outlet)
        # the sessions of the students of the shards this worker holds (consumer.sessions)
        self._sessions = SessionCache(tables, size=settings.session_cache_size)
        self._integrity = IntegrityEvents(  # the stream's second event type (consumer.integrity)
            tables=tables, policies=self._policies, outlet=self._outlet, sessions=self._sessions
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

    def release_shard(self, shard_id: str) -> None:
        """The shard's lease is gone: its students' sessions are read again next time."""
        dropped = self._sessions.release(shard_id)
        if dropped:
            _log.info("sessions of a released shard forgotten", shard=shard_id, sessions=dropped)

    async def park(
        self, record: Record, *, shard_id: str, error: BaseException, attempts: int
    ) -> None:
        """Set aside a record that kept failing, so that the shard moves on.

        The errors table gets a ``stage = parked`` row with the whole record
        (``proctor parked replay`` puts it back on the stream); for a chunk,
        its result row says ``status = error`` so the student's timeline shows
        the gap instead of hiding it (``consumer.error_rows``).
        """
        await self._errors.park(record, shard_id=shard_id, error=error, attempts=attempts)

    async def _process(self, records: Sequence[Record], shard_id: str) -> BatchOutcome:
        outcome = BatchOutcome()
        self._metrics.add(MetricName.BatchSize, len(records))
        chunks, integrity = await self._parse(records, shard_id, outcome)
        if self._settings.exam_gate:
            chunks = await self._gate(chunks, outcome)
        chunks = await self._by_policy(chunks, outcome)
        by_student: dict[tuple[str, str], list[tuple[ChunkEvent, Record]]] = defaultdict(list)
        for event, record in chunks.values():
            by_student[(event.exam_id, event.student_id)].append((event, record))
        saves = SaveGroup(
            functools.partial(self._save_sessions, shard_id=shard_id),
            most=self._settings.save_group_students,
            wait=self._settings.save_group_wait,
        )
        for counts in await self._gather(
            [self._student(chunks, saves, shard_id) for chunks in by_student.values()]
        ):
            outcome += counts
        if integrity:  # after the chunks: one writer of a student's session at a time
            outcome += await self._integrity.apply(integrity, shard_id=shard_id)
        self._metrics.flush()
        return outcome

    async def _student(
        self, chunks: list[tuple[ChunkEvent, Record]], saves: SaveGroup, shard_id: str
    ) -> BatchOutcome:
        """One student's chunks: their frames (concurrently), then analysed in order. A
        student's analysis waits for its own frames only, not for the batch's slowest one."""
        framed = await self._gather([self._frame(e, r) for e, r in chunks])
        with saves.join() as member:  # its save waits for the others being analysed
            return await self._apply(framed, member.save)

    async def _save_sessions(self, saves: list[SessionSave], *, shard_id: str) -> list[Any]:
        """``SaveGroup``'s write: sessions and rows (``processed_at``: when sent, after the
        group's wait); each row written is counted and logged."""
        at = {"processed_at": self._now().isoformat()}
        saves = [replace(s, results=[{**r, **at} for r in s.results]) for s in saves]
        outcomes = await self._sessions.save_many(saves, shard_id=shard_id)
        for save, outcome in zip(saves, outcomes, strict=True):
            for row in () if isinstance(outcome, StorageError) else save.results:
                self._results.written(dict(row))
        return outcomes

    async def _frame(self, event: ChunkEvent, record: Record) -> Chunk:
        chunk = await self._frames.run(event, record, new=self._sessions.new(event))
        return replace(chunk, extracted_at=self._clock())

    async def _parse(
        self, records: Sequence[Record], shard_id: str, outcome: BatchOutcome
    ) -> tuple[_Chunks, list[tuple[IntegrityEvent, str]]]:
        """The batch's chunk events, one per sequence, and its integrity events (each with
        its record's sequence number); bad records and duplicates are counted and recorded."""
        chunks: _Chunks = {}
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
                await self._errors.bad_event(record, exc, shard_id)
                outcome.errors += 1
                continue
            identity = (event.session_id, event.source, event.sequence)
            if identity in chunks:
                earlier = chunks[identity][0]
                if (earlier.key, earlier.size) != (event.key, event.size):
                    # two objects for one sequence in one batch: the second is never analysed
                    flagged = await self._results.second_object(
                        Chunk(event, record), {"chunk_key": earlier.key}
                    )
                    outcome.errors += int(flagged)
                    outcome.alerts += int(flagged)
                    outcome.duplicates += int(not flagged)
                    continue
                outcome.duplicates += 1
                continue
            chunks[identity] = (event, record)
        return chunks, integrity

    async def _gate(self, chunks: _Chunks, outcome: BatchOutcome) -> _Chunks:
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
            await self._results.not_analysed(event, reason)
            outcome.results += 1
        return kept

    async def _by_policy(self, chunks: _Chunks, outcome: BatchOutcome) -> _Chunks:
        """Keep the chunks of sources the exam's policy analyses; record the others."""
        kept = {}
        for identity, (event, record) in chunks.items():
            policy = await self._policies.get(event.exam_id)
            if event.source not in _VIDEO_SOURCES or policy.analyses(event.source):
                kept[identity] = (event, record)
                continue
            await self._results.not_analysed(event, "source_off")
            outcome.results += 1
        return kept

    @staticmethod
    async def _gather(coroutines: Sequence[Any]) -> list[Any]:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coroutines]
        return [t.result() for t in tasks]

    async def _apply(self, chunks: list[Chunk], save: _Save) -> BatchOutcome:
        """One student's chunks, in order: analysed, judged, alerted; then the rows of the
        chunks that had none and the session in one transaction (``save``), after the alerts
        (why no alert is lost: ``consumer.sessions``, "Rows with the session")."""
        counts = BatchOutcome()
        chunks.sort(key=lambda c: (c.event.source, c.event.sequence))
        first = chunks[0].event
        session = await self._sessions.load(first.exam_id, first.student_id)
        analyser = StudentAnalyser(
            engine=self._engine,
            settings=self._settings,
            policy=await self._policies.get(first.exam_id),
            session=session,
            metrics=self._metrics,
            enrolment=functools.partial(enrolment_view, self._s3, self._engine, self._settings),
        )
        moments: dict[str, str] = dict(session.get("moments", {}))
        latest = session.get("latest")  # what the console's tile shows (consumer.latest)
        frames = KeptFrames(session.get("frames"), every=analyser.policy.frame_every)
        written: dict[str, int] = dict(session.get("results_through") or {})
        new_rows: list[dict[str, Any]] = []  # rows of chunks that had none: with the session
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
                    flagged = await self._results.second_object(chunk, chunk.first)
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
                        await self._results.not_analysed(
                            event, "same_moment", same_as=claimed, frame_key=chunk.frame_key
                        )
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
                        analysed_at=self._clock(),
                    )
                    if chunk.analysed is not None and chunk.analysed.used_fallback:
                        chunk = self._frames.use_fallback(chunk)
                if chunk.error is None and frames.due(chunk):  # the evidence frame, when needed
                    chunk = await self._frames.store(chunk)
                    frames.kept(chunk)
                if chunk.absent and chunk.error is None and len(new_rows) < RESULTS_PER_SAVE:
                    new_rows.append(self._results.build(chunk))  # written with the session
                    earlier = None
                else:
                    earlier = await self._results.write(chunk)
                written[event.source] = max(event.sequence, written.get(event.source, -1))
                if earlier is not None and another_object(earlier, event, chunk.digest):
                    await self._results.second_object(chunk, earlier)  # lost a race to another
                    counts.errors += 1
                    continue
                counts.results += 1
                latest = fold_latest(latest, chunk, self._now())
                if chunk.error is not None:
                    await self._errors.bad_chunk(chunk)
                    counts.errors += 1
                    continue
                for finding in chunk.analysed.findings if chunk.analysed else []:
                    await self._results.raise_alert(chunk, finding)
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
        session["frames"] = frames.to_dict()
        session["results_through"] = written  # the rows written: no read before the next
        if moments:
            newest = sorted(moments, key=int)[-_MOMENTS_KEPT:]
            session["moments"] = {m: moments[m] for m in newest}
        if latest is not None:
            session["latest"] = latest
        session["updated_at"] = self._now().isoformat()
        version = int(session.pop("version", 0))
        await save(SessionSave(session, version, new_rows))  # counts and logs the rows
        return counts

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)

    def _expiry(self, now: datetime) -> int:
        return int((now + timedelta(days=self._settings.retention_days)).timestamp())

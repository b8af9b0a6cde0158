"""The sessions a worker keeps between batches (``consumer.sessions``): read once per lease,
never undoing what someone else wrote meanwhile, read again once the lease is gone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import pytest

from consumer.poison import BatchRunner
from consumer.processor import BatchFailed, Record
from consumer.sessions import SaveGroup, SessionCache
from consumer.wiring import build_processor
from proctoring.analysis.fixed import FixedLatencyEngine
from proctoring.aws import RequestCounter, async_clients
from proctoring.dynamo import to_item
from proctoring.events import ChunkEvent, ChunkKey
from proctoring.integrity import IntegrityEvent
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import SessionSave, StorageError, Tables
from producer.chunking import chunk_recording
from tests.conftest import DATA, needs_data
from tests.consumer.test_frame_stage import _LeavesAfter
from tests.consumer.test_requests import AnalysedTogether
from tests.pipeline import upload_chunk

EXAM, STUDENT = "kept", "s1"


async def _chunk(
    clients: Any, settings: Settings, sequence: int, data: bytes, *, late_ms: int = 0
) -> Record:
    """The chunk uploaded and its record (``late_ms``: another object's key, same sequence)."""
    key = ChunkKey(
        exam_id=EXAM, student_id=STUDENT, source="camera", sequence=sequence,
        captured_ms=1_795_000_000_000 + sequence * 5000 + late_ms, ext="mp4",
    ).key  # fmt: skip
    await clients.s3.put_object(Bucket=settings.names.chunks_bucket, Key=key, Body=data)
    event = ChunkEvent.from_key(
        settings.names.chunks_bucket, key, size=len(data), uploaded_at=datetime.now(UTC)
    )
    return Record(f"c{sequence}-{late_ms}", event.to_bytes(), event.partition_key)


def _worker(settings: Settings, clients: Any, tables: Tables, pool: Executor) -> BatchRunner:
    metrics = Metrics("Test", "consumer", lambda _: None)
    processor = build_processor(settings, clients, tables, pool, metrics, FixedLatencyEngine(0.0))
    return BatchRunner(processor, settings=settings, metrics=metrics)


def _integrity(seq: int) -> Record:
    now = datetime.now(UTC)
    event = IntegrityEvent(
        exam_id=EXAM, student_id=STUDENT, event_id=f"ev-kept-{seq:04d}", seq=seq, kind="hidden",
        at=now, duration_ms=0, received_at=now,
    )  # fmt: skip
    return Record(f"i{seq}", event.to_bytes(), f"{EXAM}#{STUDENT}")


@needs_data
def test_a_kept_session_never_undoes_another_write_and_goes_with_the_lease(
    settings: Settings, pool: Executor
) -> None:
    videos = [c.data for c in islice(chunk_recording(DATA / "video/center_focus.mp4"), 2)]
    settings = settings.model_copy(update={"poll_interval": 0.01})  # the retry's backoff

    async def run() -> tuple[list[int], dict[str, Any], int]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            reads: list[str] = []  # GetItem requests on the sessions table, by student

            def note(event_name: str, request: Any, **_: Any) -> None:
                body = json.loads(request.body or b"{}")
                if body.get("TableName") == settings.names.sessions_table:
                    reads.append(body["Key"]["student_id"]["S"])

            clients.dynamodb.meta.events.register("before-send.dynamodb.GetItem", note)

            ours, other = (_worker(settings, clients, tables, pool) for _ in range(2))
            read_per_batch = []
            for sequence in range(4):
                if sequence == 2:  # between two batches, two other writers of the session:
                    # an operator's accommodations (as docs/operations.md says to write them)
                    await clients.dynamodb.update_item(
                        TableName=settings.names.sessions_table,
                        Key=to_item({"exam_id": EXAM, "student_id": STUDENT}),
                        UpdateExpression="SET accommodations = :a ADD version :one",
                        ExpressionAttributeValues=to_item(
                            {":a": {"face_checks": False}, ":one": 1}
                        ),
                    )
                    # and another worker (a lease that moved and came back) judging an event
                    await other.run([_integrity(1)], shard_id="shard-0")
                if sequence == 3:  # the lease is released: the next owner reads afresh
                    ours.release("shard-0")
                before = len(reads)
                record = await _chunk(clients, settings, sequence, videos[sequence % 2])
                await ours.run([record], shard_id="shard-0")
                read_per_batch.append(reads[before:].count(STUDENT))
            session = await tables.get_session(EXAM, STUDENT)
            rows = await tables.results(f"{EXAM}#{STUDENT}")
        assert session is not None
        return read_per_batch, session, len(rows)

    read_per_batch, session, rows = asyncio.run(run())
    assert rows == 4 + 1  # every chunk and the integrity event, once
    # read on the first batch only; again after the others' writes (the save failed, the
    # batch was processed again from a fresh read) and after the lease went
    assert read_per_batch == [1, 0, 1, 1]
    assert session["accommodations"] == {"face_checks": False}, "the operator's write stays"
    assert session["integrity"]["last_seq"] == 1, "the other worker's write stays"


@needs_data
def test_a_second_object_written_by_another_worker_meanwhile_is_flagged_not_alerted(
    settings: Settings, pool: Executor
) -> None:
    """The kept session says sequence 1 has no row yet, so it is not read first; another
    worker wrote one meanwhile (another object): the conditional write finds it."""
    face, other_bytes = (
        c.data for c in islice(chunk_recording(DATA / "video/center_focus.mp4"), 2)
    )
    settings = settings.model_copy(update={"poll_interval": 0.01})

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            ours, other = (_worker(settings, clients, tables, pool) for _ in range(2))
            await ours.run([await _chunk(clients, settings, 0, face)], shard_id="shard-0")
            first = await _chunk(clients, settings, 1, face)
            await other.run([first], shard_id="shard-0")
            second = await _chunk(clients, settings, 1, other_bytes, late_ms=700)
            await ours.run([second], shard_id="shard-0")
            return (
                await tables.results(f"{EXAM}#{STUDENT}"),
                await tables.alerts(EXAM),
                await tables.errors(EXAM),
            )

    rows, alerts, errors = asyncio.run(run())
    assert [r["chunk_key"].rsplit("/", 1)[-1] for r in rows] == [
        "000000_1795000000000.mp4",
        "000001_1795000005000.mp4",
    ], "the row written first stays"
    (replaced,) = alerts  # the second object flagged; nothing raised from its analysis
    assert replaced["type"] == "CHUNK_REPLACED" and replaced["sequence"] == 1
    assert replaced["replaced_by"]["chunk_key"].endswith("000001_1795000005700.mp4")
    assert [e["reason"] for e in errors] == ["second_object"]


class _DiesBeforeTheRows(Tables):
    """The process dies (an outage, as far as the batch knows) before its rows are written."""

    async def save_sessions(self, saves: Sequence[SessionSave]) -> list[Any]:
        if any(save.results for save in saves):
            raise StorageError("the worker died before the transaction")
        return await super().save_sessions(saves)


@needs_data
def test_an_alert_raised_before_the_rows_are_written_survives_the_worker(
    settings: Settings, pool: Executor
) -> None:
    """Alerts come before the transaction of rows and session: a worker that dies between
    them leaves the alert, and the next owner writes the rows and raises it no second time."""
    video = next(chunk_recording(DATA / "video/center_focus.mp4")).data
    settings = settings.model_copy(update={"max_repeats": 0})

    async def run() -> dict[str, Any]:
        async with async_clients(settings) as clients:
            metrics = Metrics("Test", "consumer", lambda _: None)
            tables = Tables(clients.dynamodb, settings.names)
            dying = build_processor(
                settings, clients, _DiesBeforeTheRows(clients.dynamodb, settings.names), pool,
                metrics, _LeavesAfter(present=0),
            )  # fmt: skip
            batches = [[await _chunk(clients, settings, n, video)] for n in range(2)]
            with pytest.raises(BatchFailed):  # NO_FACE on the 2nd chunk without a face
                await dying.process(batches[0] + batches[1], shard_id="shard-0")
            left = {
                "alerts": await tables.alerts(EXAM),
                "rows": await tables.results(f"{EXAM}#{STUDENT}"),
            }
            taking_over = build_processor(
                settings, clients, tables, pool, metrics, _LeavesAfter(present=0)
            )
            outcome = await taking_over.process(batches[0] + batches[1], shard_id="shard-0")
            return {
                "left": left,
                "outcome": outcome,
                "alerts": await tables.alerts(EXAM),
                "rows": await tables.results(f"{EXAM}#{STUDENT}"),
            }

    out = asyncio.run(run())
    (left,) = out["left"]["alerts"]
    assert left["type"] == "NO_FACE" and out["left"]["rows"] == [], "alert first, rows after"
    (alert,) = out["alerts"]
    assert alert["alert_id"] == left["alert_id"] and alert["published"], "raised once, published"
    assert [r["sequence"] for r in out["rows"]] == [0, 1]
    assert alert["frame_key"] == out["rows"][1]["frame_key"], "the alert's evidence is the row's"


def test_the_kept_sessions_are_bounded_and_go_with_their_shard(settings: Settings) -> None:
    """At most ``size`` sessions are kept, the least recently saved out first; releasing a
    shard forgets its students only. Whatever is not kept is read again (one GetItem)."""

    async def run() -> dict[str, int]:
        async with async_clients(settings) as clients:
            cache = SessionCache(Tables(clients.dynamodb, settings.names), size=2)
            for student, shard in (("a", "shard-0"), ("b", "shard-1"), ("c", "shard-1")):
                session = await cache.load(EXAM, student)
                version = int(session.pop("version"))
                await cache.save(session, expected_version=version, shard_id=shard)
            kept_after_three = len(cache)  # "a" went: the least recently saved
            assert cache.release("shard-0") == 0 and cache.release("shard-1") == 2
            reads = RequestCounter().watch([clients.dynamodb])
            sessions = [await cache.load(EXAM, s) for s in ("a", "b", "c")]
            reads.stop()
            return {
                "kept": kept_after_three,
                "reads": reads.counts["dynamodb.GetItem"],
                "versions": sum(int(s["version"]) for s in sessions),
            }

    assert asyncio.run(run()) == {"kept": 2, "reads": 3, "versions": 3}


async def _student_chunk(
    clients: Any, settings: Settings, student: str, sequence: int, data: bytes
) -> Record:
    event = await upload_chunk(
        clients, settings, exam_id=EXAM, student_id=student, sequence=sequence, data=data
    )
    return Record(f"{student}-{sequence}", event.to_bytes(), event.partition_key)


@needs_data
def test_a_stale_student_in_a_batch_costs_the_others_nothing(
    settings: Settings, pool: Executor
) -> None:
    """Four students' saves in one transaction. Another worker processed student a's next
    chunk meanwhile (its row and session exist, the session a version further), and d's
    chunk comes again (a redelivery). DynamoDB cancels the transaction on a's items only:
    b's and c's rows and d's session are written by it sent again; the batch fails for a
    alone and, processed again, finds every row: each chunk has exactly one row, written once.
    """
    video = next(chunk_recording(DATA / "video/center_focus.mp4")).data
    # every chunk analysed; the four saves wait for each other however slow this machine is
    settings = settings.model_copy(update={"max_repeats": 0, "save_group_wait": 60.0})

    async def run() -> dict[str, Any]:
        async with async_clients(settings) as clients:
            tables = Tables(clients.dynamodb, settings.names)
            metrics = Metrics("Test", "consumer", lambda _: None)
            worker = build_processor(
                settings, clients, tables, pool, metrics, AnalysedTogether(4)
            )  # the four students' analyses answered together: their saves are one write
            first = [await _student_chunk(clients, settings, s, 0, video) for s in "abcd"]
            await worker.process(first, shard_id="shard-0")
            a1 = await _student_chunk(clients, settings, "a", 1, video)
            other = build_processor(
                settings, clients, tables, pool, Metrics("Test", "consumer", lambda _: None),
                FixedLatencyEngine(0.0),
            )  # fmt: skip
            await other.process([a1], shard_id="shard-0")  # the lease went and came back
            a_row = await tables.get_result(f"{EXAM}#a", "camera#000001")
            second = [a1] + [await _student_chunk(clients, settings, s, 1, video) for s in "bc"]
            second.append(first[3])  # d's chunk again
            requests = RequestCounter().watch([clients.dynamodb])
            with pytest.raises(BatchFailed) as failed:
                await worker.process(second, shard_id="shard-0")
            requests.stop()
            rows_between = {s: await tables.results(f"{EXAM}#{s}") for s in "abcd"}
            await worker.process(second, shard_id="shard-0")  # as the retry policy does
            return {
                "poison": failed.value.poison,
                "requests": requests.counts["dynamodb.TransactWriteItems"],
                "a_row": a_row,
                "between": rows_between,
                "rows": {s: await tables.results(f"{EXAM}#{s}") for s in "abcd"},
                "totals": metrics.totals(),
            }

    out = asyncio.run(run())
    assert out["poison"] is False, "a stale session is processed again, never parked"
    assert out["requests"] == 2, "the cancelled transaction, then the others without a"
    between = {s: [r["sequence"] for r in rows] for s, rows in out["between"].items()}
    assert between == {"a": [0, 1], "b": [0, 1], "c": [0, 1], "d": [0]}
    assert out["between"]["a"][1] == out["a_row"], "the other worker's row stays"
    assert {s: [r["sequence"] for r in rows] for s, rows in out["rows"].items()} == between
    for s in "bc":  # written by the first attempt, found by the second
        assert out["rows"][s][1]["processed_at"] == out["between"][s][1]["processed_at"]
    assert out["totals"]["ChunksProcessed"] == 4 + 2, "b's and c's new rows, once each"
    assert out["totals"]["ChunksRedelivered"] == 1 + 4, "d's, then the whole batch again"


def test_saves_wait_for_the_students_being_analysed_not_for_those_still_fetching() -> None:
    """``SaveGroup``: the last student to reach its save writes every waiting one at once; a
    student that has not joined (its chunk still downloading) is written later, on its own;
    one that fails before its save releases the others (the batch fails: done again)."""
    writes: list[list[str]] = []

    async def write(saves: list[SessionSave]) -> list[Any]:
        writes.append([save.session["student_id"] for save in saves])
        return [{**save.session, "version": save.expected_version + 1} for save in saves]

    def save(student: str) -> SessionSave:
        return SessionSave({"exam_id": EXAM, "student_id": student}, 0)

    async def run() -> list[Any]:
        group = SaveGroup(write)
        a, b = group.join(), group.join()
        saved_a = asyncio.ensure_future(a.save(save("a")))
        await asyncio.sleep(0)  # one turn of the loop: a reaches its wait (b is being analysed)
        assert writes == []
        saved_b = await b.save(save("b"))
        late = await group.join().save(save("late"))  # its chunk came after the others'
        c, d = group.join(), group.join()
        saved_c = asyncio.ensure_future(c.save(save("c")))
        await asyncio.sleep(0)
        d.leave()  # d's processing failed: nobody waits for it, c is not written
        with pytest.raises(asyncio.CancelledError):
            await saved_c
        return [await saved_a, saved_b, late]

    saved = asyncio.run(run())
    assert writes == [["a", "b"], ["late"]]
    assert [s["version"] for s in saved] == [1, 1, 1]


def test_a_full_group_is_written_without_waiting_for_the_others() -> None:
    """``PROCTOR_SAVE_GROUP_STUDENTS`` (``most``): that many waiting saves are written at once
    while another student is still being analysed; 1 writes each on its own."""

    def save(student: str) -> SessionSave:
        return SessionSave({"exam_id": EXAM, "student_id": student}, 0)

    async def groups(most: int) -> list[list[str]]:
        writes: list[list[str]] = []

        async def write(saves: list[SessionSave]) -> list[Any]:
            writes.append([save.session["student_id"] for save in saves])
            return [dict(save.session) for save in saves]

        group = SaveGroup(write, most=most)
        a, b, c = group.join(), group.join(), group.join()  # all three being analysed
        async with asyncio.timeout(10):  # a deadline, not a pace
            await asyncio.gather(a.save(save("a")), b.save(save("b")))  # c not there yet
        await c.save(save("c"))
        return writes

    assert asyncio.run(groups(1)) == [["a"], ["b"], ["c"]]
    assert asyncio.run(groups(2)) == [["a", "b"], ["c"]]


def test_a_save_waits_for_a_slow_student_only_so_long() -> None:
    """``PROCTOR_SAVE_GROUP_WAIT``: saves waiting for a student still being analysed are
    written once the first of them waited that long; the slow one is written on its own."""
    writes: list[list[str]] = []

    async def write(saves: list[SessionSave]) -> list[Any]:
        writes.append([save.session["student_id"] for save in saves])
        return [dict(save.session) for save in saves]

    def save(student: str) -> SessionSave:
        return SessionSave({"exam_id": EXAM, "student_id": student}, 0)

    async def run() -> None:
        group = SaveGroup(write, most=50, wait=0.01)
        a, b, slow = group.join(), group.join(), group.join()
        async with asyncio.timeout(10):  # a deadline, not a pace: the wait lets a and b go
            await asyncio.gather(a.save(save("a")), b.save(save("b")))
        assert writes == [["a", "b"]], "written while the slow student is still analysed"
        await slow.save(save("slow"))

    asyncio.run(run())
    assert writes == [["a", "b"], ["slow"]]

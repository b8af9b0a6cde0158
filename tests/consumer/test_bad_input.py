"""The bad-input matrix: every broken or hostile input, through the real path, is recorded
and isolated.

Each case runs S3 -> the bucket's notification on SQS -> the chunk router -> Kinesis ->
the record processor over moto's HTTP server, in one batch that carries a good chunk of
the same student before the bad input and one after it. Expected for every bad input:

- an errors-table row with the stage and a stable reason (and, for a chunk, a result row
  with ``status = error``) that a human can read;
- the ``ChunkErrors`` or ``RouterErrors`` metric with that ``Reason``;
- an error log line naming the reason, with no frame, photo or embedding in it;
- nothing else affected: the good chunks get their ``ok`` result rows, in sequence order,
  the router reports no message for redelivery, no alert is raised.

What "wrong codec" means here: a valid MP4/MKV whose video is not one of the codecs a
recorder produces (H.264, HEVC, VP8, VP9, AV1) - an image codec (MJPEG, PNG), or a
codec FFmpeg does not know. It is refused before any decoder sees a packet
(``unsupported_codec``).

Cases that need the exam lifecycle (an event for an unknown or a stopped exam, a chunk
after the exam stopped) belong with the exams API and are not here.

One stack (one shard, so every case shares it like students share a shard) and one set
of media serve the whole module; each case has its own exam id.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import av
import numpy as np
import pytest
import structlog
from av.video.stream import VideoStream
from PIL import Image

from consumer.processor import BatchOutcome, Record
from consumer.wiring import build_processor
from infrastructure.emulator import Emulator
from lambdas.chunk_router import RouteOutcome, route
from proctoring.aws import AsyncClients, async_clients
from proctoring.events import MAX_EVENT_BYTES, ChunkEvent
from proctoring.metrics import Metrics
from proctoring.settings import Settings
from proctoring.storage import Tables
from producer.chunking import chunk_recording
from tests.conftest import DATA, eventually, needs_data, provisioned

pytestmark = [pytest.mark.slow, needs_data]

REPO = Path(__file__).resolve().parents[2]
STUDENT = "s1"
BAD_SEQ = 1  # the bad input sits between the good chunks 0 and 2
UNKNOWN = "_unknown"  # the errors partition of input that names no valid exam
_LOG_EVENTS = ("bad input", "object is not a chunk", "message is not a chunk notification")


# ---- media, made once per module ---------------------------------------------------------
def _encode(
    codec: str,
    fmt: str,
    *,
    side: int = 64,
    frames: int = 3,
    rate: int = 10,
    pix_fmt: str = "yuv420p",
    pts_step: int = 1,
) -> bytes:
    """A tiny video of grey frames, in memory."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        assert isinstance(stream, VideoStream)
        stream.width = stream.height = side
        stream.pix_fmt = pix_fmt
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(
                np.full((side, side, 3), 40 * i, np.uint8), format="rgb24"
            )
            frame.pts = i * pts_step
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def _silence() -> bytes:
    """One second of AAC silence in an MP4: a valid container without video."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000, layout="mono")
        for pts in range(0, 48000, 1024):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 48000, pts
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def _vp8_bomb(side: int, *, container_too: bool) -> bytes:
    """A 779-byte WebM whose VP8 keyframes declare ``side`` x ``side`` pixels.

    Made by encoding 256x256 and rewriting the 14-bit sizes in every keyframe header
    (after the start code 9d 01 2a); with ``container_too`` the WebM track's PixelWidth
    and PixelHeight say so as well, otherwise the container keeps saying 256x256 and only
    the bitstream is a bomb. Decoding it would allocate side*side*1.5 bytes, and as much
    again per conversion.
    """
    data = bytearray(_encode("libvpx", "webm", side=256))
    start = 0
    while (start := data.find(b"\x9d\x01\x2a", start)) >= 0:
        data[start + 3 : start + 7] = side.to_bytes(2, "little") * 2
        start += 3
    out = bytes(data)
    if container_too:
        size = b"\x82" + side.to_bytes(2, "big")  # EBML: 2-byte unsigned, as 256 was written
        assert out.count(b"\xb0\x82\x01\x00") == out.count(b"\xba\x82\x01\x00") == 1
        out = out.replace(b"\xb0\x82\x01\x00", b"\xb0" + size)
        out = out.replace(b"\xba\x82\x01\x00", b"\xba" + size)
    return out


def _with_sample_entry(mp4: bytes, fourcc: bytes) -> bytes:
    """The MP4 with its video sample entry renamed: a codec tag FFmpeg does not know."""
    at = mp4.index(b"avc1", mp4.index(b"stsd"))
    return mp4[:at] + fourcc + mp4[at + 4 :]


@dataclass(frozen=True)
class Media:
    good: bytes  # the first 5 s of center_focus.mp4: a phone chunk, rotated, one face
    objects: dict[str, bytes]


@pytest.fixture(scope="module")
def media() -> Media:
    good = next(chunk_recording(DATA / "video/center_focus.mp4")).data
    webm = _encode("libvpx", "webm")
    h264 = _encode("libx264", "mp4")
    return Media(
        good=good,
        objects={
            "zero_byte": b"",
            "text": b"this is a shopping list, not a video\n" * 20,
            "jpeg_photo": (DATA / "faces/obama.jpg").read_bytes(),
            # The classic FFmpeg attack: a playlist that makes the demuxer read local files.
            "hls_playlist": b"#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:5,\nfile:///etc/passwd\n"
            b"#EXT-X-ENDLIST\n",
            "truncated_mp4": good[: len(good) * 3 // 10],
            "truncated_webm": webm[: len(webm) // 2],
            "mjpeg_in_mkv": _encode("mjpeg", "matroska", pix_fmt="yuvj420p"),
            "png_in_mp4": _encode("png", "mp4", pix_fmt="rgb24"),
            "unknown_codec": _with_sample_entry(h264, b"xxxx"),
            "audio_only": _silence(),
            "bomb_16k": _vp8_bomb(16383, container_too=True),
            "bomb_hidden_in_bitstream": _vp8_bomb(4096, container_too=False),
            "ten_minutes": _encode("libx264", "mp4", frames=3, rate=1, pts_step=300),
            "oversized": good + bytes(4096),
        },
    )


# ---- the stack, once per module ----------------------------------------------------------
@pytest.fixture(scope="module")
def stack(emulator: Emulator) -> Settings:
    return provisioned(emulator, shard_count=1)


# ---- one case's run ----------------------------------------------------------------------
@dataclass
class Ctx:
    """What a case injects between the good chunks 0 and 2 of its student."""

    settings: Settings
    clients: AsyncClients
    media: Media
    exam: str
    to_route: list[str] = field(default_factory=list)
    crafted: list[dict[str, Any]] = field(default_factory=list)
    raw_sequences: list[str] = field(default_factory=list)

    @property
    def bucket(self) -> str:
        return self.settings.names.chunks_bucket

    def key(self, sequence: int = BAD_SEQ, *, student: str = STUDENT, ext: str = "mp4") -> str:
        return (
            f"chunks/{self.exam}/{student}/camera/{sequence:06d}_"
            f"{1_795_000_000_000 + sequence * 5000}.{ext}"
        )

    async def upload(self, key: str, data: bytes, *, routed: bool = True) -> None:
        await self.clients.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        if routed:
            self.to_route.append(key)

    async def put_raw(self, data: bytes, partition_key: str | None = None) -> None:
        """A record straight onto the stream: a writer other than the router, or a bug."""
        response = await self.clients.kinesis.put_record(
            StreamName=self.settings.names.stream,
            Data=data,
            PartitionKey=partition_key or f"{self.exam}#{STUDENT}",
        )
        self.raw_sequences.append(response["SequenceNumber"])

    def message(self, body: str) -> None:
        """A message on the chunk-events queue that S3 did not send."""
        self.crafted.append(
            {"eventSource": "aws:sqs", "messageId": f"{self.exam}-crafted", "body": body}
        )

    def notification(self, key: str, *, size: Any = 10, **changes: Any) -> None:
        record: dict[str, Any] = {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "eventTime": "2026-11-27T10:00:05.000Z",
            "s3": {"bucket": {"name": self.bucket}, "object": {"key": key, "size": size}},
            **changes,
        }
        self.message(json.dumps({"Records": [record]}))

    def event(self, **changes: Any) -> dict[str, Any]:
        """A valid v1 event for the bad chunk of the case's student, then ``changes``."""
        event = ChunkEvent.from_key(
            self.bucket, self.key(), size=1000, uploaded_at=datetime.now(UTC)
        )
        return {**json.loads(event.to_bytes()), **changes}


Inject = Callable[[Ctx], Awaitable[None]]


@dataclass(frozen=True)
class Expect:
    stage: str  # chunk | event | router
    reason: str
    exam: str | None = None  # the errors partition the row lands in; None: the case's exam


@dataclass(frozen=True)
class Case:
    id: str
    inject: Inject
    expect: Expect
    size_limit: bool = False  # lower max_chunk_bytes to the good chunk's size


@dataclass
class Run:
    route: RouteOutcome
    outcomes: list[BatchOutcome]
    results: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    session: dict[str, Any] | None
    metrics: list[dict[str, Any]]
    logs: list[dict[str, Any]]
    frames: dict[int, bytes]


async def _route(ctx: Ctx, tables: Tables, metrics: Metrics) -> RouteOutcome:
    """Route the S3 notifications of the uploaded keys (and the crafted messages) as the
    Lambda would get them from the chunk-events queue, in one invocation."""
    sqs = ctx.clients.sqs
    queue = (await sqs.get_queue_url(QueueName=ctx.settings.names.chunk_events_queue))["QueueUrl"]
    wanted, messages = set(ctx.to_route), []

    async def receive() -> set[str]:
        response = await sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=60
        )
        for message in response.get("Messages", []):
            body = json.loads(message["Body"])
            keys = {unquote_plus(r["s3"]["object"]["key"]) for r in body.get("Records", [])}
            if keys & wanted:
                messages.append(message)
            else:  # an s3:TestEvent, or left over by an earlier case that failed
                await sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return {
            unquote_plus(r["s3"]["object"]["key"])
            for m in messages
            for r in json.loads(m["Body"])["Records"]
        }

    await eventually(receive, lambda seen: seen >= wanted, within=30)
    event = {
        "Records": [
            {
                "eventSource": "aws:sqs",
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
            }
            for m in messages
        ]
        + ctx.crafted
    }
    outcome = await route(
        event,
        kinesis=ctx.clients.kinesis,
        tables=tables,
        stream=ctx.settings.names.stream,
        metrics=metrics,
    )
    for m in messages:
        await sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    ctx.to_route.clear()
    ctx.crafted.clear()
    return outcome


async def _read_new(kinesis: Any, stream: str, iterator: str) -> list[Record]:
    response = await kinesis.get_records(ShardIterator=iterator, Limit=1000)
    return [Record(r["SequenceNumber"], r["Data"], r["PartitionKey"]) for r in response["Records"]]


def run_case(
    stack: Settings,
    pool: Executor,
    media: Media,
    exam: str,
    inject: Inject,
    *,
    settings: dict[str, Any] | None = None,
    batches: int = 1,
    before: tuple[int, ...] = (0,),
    after: tuple[int, ...] = (2,),
    repeat: int = 1,
) -> Run:
    """Good chunks ``before``, the injected input, good chunks ``after``; route; process.

    ``batches=2`` processes what was put before the injection as one batch and the rest
    as a second one; ``repeat`` processes the batches that many times (a replay).
    """
    case_settings = stack.model_copy(update=settings or {})
    emitted: list[str] = []

    async def run() -> Run:
        async with async_clients(case_settings) as clients:
            tables = Tables(clients.dynamodb, case_settings.names)
            metrics = Metrics("Test", "bad-input", emitted.append)
            ctx = Ctx(case_settings, clients, media, exam)
            kinesis, stream = clients.kinesis, case_settings.names.stream
            (shard,) = (await kinesis.list_shards(StreamName=stream))["Shards"]
            shard_id = shard["ShardId"]

            async def latest() -> str:
                response = await kinesis.get_shard_iterator(
                    StreamName=stream, ShardId=shard_id, ShardIteratorType="LATEST"
                )
                return str(response["ShardIterator"])

            first_iterator = await latest()
            for sequence in before:
                await ctx.upload(ctx.key(sequence), media.good)
            routed = await _route(ctx, tables, metrics)
            second_iterator = await latest()
            await inject(ctx)
            for sequence in after:
                await ctx.upload(ctx.key(sequence), media.good)
            routed_after = await _route(ctx, tables, metrics)
            routed.routed += routed_after.routed
            routed.rejected += routed_after.rejected
            routed.failed_messages += routed_after.failed_messages

            records = await _read_new(kinesis, stream, first_iterator)
            split = [records]
            if batches == 2:
                later = await _read_new(kinesis, stream, second_iterator)
                assert records[len(records) - len(later) :] == later
                split = [records[: len(records) - len(later)], later]
            processor = build_processor(case_settings, clients, tables, pool, metrics)
            outcomes = []
            for _ in range(repeat):
                for batch in split:
                    outcomes.append(await processor.process(batch, shard_id=shard_id))
            metrics.flush()

            # The case's exam, and its rows in the partition every case shares: those that
            # name its exam or the records it put on the stream.
            errors = await tables.errors(exam) + [
                row
                for row in await tables.errors(UNKNOWN)
                if exam in row["error_id"] or row.get("sequence_number") in ctx.raw_sequences
            ]
            results = sorted(await tables.results(f"{exam}#{STUDENT}"), key=lambda r: r["sequence"])
            frames = {}
            for row in results:
                if row.get("frame_key"):
                    got = await clients.s3.get_object(
                        Bucket=case_settings.names.frames_bucket, Key=row["frame_key"]
                    )
                    async with got["Body"] as body:
                        frames[row["sequence"]] = await body.read()
            return Run(
                route=routed,
                outcomes=outcomes,
                results=results,
                errors=errors,
                alerts=await tables.alerts(exam),
                session=await tables.get_session(exam, STUDENT),
                metrics=[json.loads(line) for line in emitted],
                logs=[],
                frames=frames,
            )

    with structlog.testing.capture_logs() as logs:
        outcome = asyncio.run(run())
    outcome.logs = [dict(entry) for entry in logs]
    return outcome


# ---- the cases -----------------------------------------------------------------------------
def _object(name: str, *, ext: str = "mp4") -> Inject:
    async def inject(ctx: Ctx) -> None:
        await ctx.upload(ctx.key(ext=ext), ctx.media.objects[name])

    return inject


def _raw(make: Callable[[Ctx], bytes], partition_key: str | None = None) -> Inject:
    async def inject(ctx: Ctx) -> None:
        await ctx.put_raw(make(ctx), partition_key)

    return inject


def _raw_event(**changes: Any) -> Inject:
    return _raw(lambda ctx: json.dumps(ctx.event(**changes)).encode())


def _bad_key(make_key: Callable[[Ctx], str]) -> Inject:
    async def inject(ctx: Ctx) -> None:
        await ctx.upload(make_key(ctx), ctx.media.good)

    return inject


def _crafted(body: Callable[[Ctx], str]) -> Inject:
    async def inject(ctx: Ctx) -> None:
        ctx.message(body(ctx))

    return inject


def _notification(key: Callable[[Ctx], str], **changes: Any) -> Inject:
    async def inject(ctx: Ctx) -> None:
        ctx.notification(key(ctx), **changes)

    return inject


async def _size_lies(ctx: Ctx) -> None:
    """An event (not from the router) that says 10 bytes for an object over the limit."""
    await ctx.upload(ctx.key(), ctx.media.objects["oversized"], routed=False)
    await ctx.put_raw(json.dumps(ctx.event(size=10)).encode())


def _huge_event(ctx: Ctx) -> bytes:
    return json.dumps(ctx.event(padding="x" * MAX_EVENT_BYTES)).encode()


def _other_students_chunk(ctx: Ctx) -> bytes:
    """Claims to be this student's chunk but names another student's video."""
    return json.dumps(ctx.event(key=ctx.key(student="victim"))).encode()


def _long_key(ctx: Ctx) -> str:
    """A key of 1,020 bytes (S3 allows 1,024) in 2-byte characters: its errors row's id is
    over DynamoDB's 1,024-byte range-key limit, which used to fail the router."""
    head, tail = f"chunks/{ctx.exam}/", "/camera/000001_1.mp4"
    return head + "é" * ((1020 - len(head) - len(tail)) // 2) + tail


ODD_EXAM = "bi odd;$(id)"
MATRIX = [
    # chunks: what a student (or a tampered recorder) can upload
    Case("zero_byte", _object("zero_byte"), Expect("chunk", "empty")),
    Case("text_file", _object("text"), Expect("chunk", "not_video")),
    Case("jpeg_photo_as_mp4", _object("jpeg_photo"), Expect("chunk", "not_video")),
    Case("hls_playlist_reading_local_files", _object("hls_playlist"), Expect("chunk", "not_video")),
    Case("truncated_mp4", _object("truncated_mp4"), Expect("chunk", "truncated")),
    Case("truncated_webm", _object("truncated_webm", ext="webm"), Expect("chunk", "truncated")),
    Case(
        "wrong_codec_mjpeg_in_mkv",
        _object("mjpeg_in_mkv", ext="mkv"),
        Expect("chunk", "unsupported_codec"),
    ),
    Case("wrong_codec_png_in_mp4", _object("png_in_mp4"), Expect("chunk", "unsupported_codec")),
    Case(
        "wrong_codec_unknown_to_ffmpeg",
        _object("unknown_codec"),
        Expect("chunk", "unsupported_codec"),
    ),
    Case("audio_only", _object("audio_only"), Expect("chunk", "no_video_stream")),
    Case("bomb_16k_x_16k", _object("bomb_16k", ext="webm"), Expect("chunk", "too_large")),
    # The container says 256x256, the keyframes 4096x4096: the decoder's max_pixels refuses
    # to allocate, and to FFmpeg the frame is just undecodable.
    Case(
        "bomb_hidden_in_the_bitstream",
        _object("bomb_hidden_in_bitstream", ext="webm"),
        Expect("chunk", "truncated"),
    ),
    Case(
        "over_the_size_limit",
        _object("oversized"),
        Expect("chunk", "too_large"),
        size_limit=True,
    ),
    Case(
        "event_understates_the_size",
        _size_lies,
        Expect("chunk", "too_large"),
        size_limit=True,
    ),
    Case("ten_minutes_long", _object("ten_minutes"), Expect("chunk", "too_long")),
    Case("object_deleted_before_processing", _raw_event(), Expect("chunk", "missing_object")),
    # events: a writer other than the router, or a bug in one
    Case("event_not_json", _raw(lambda ctx: b"not json {"), Expect("event", "not_json")),
    Case(
        "event_not_utf8",
        _raw(lambda ctx: b'\xff\xfe{"v": 1}'),
        Expect("event", "not_json"),
    ),
    Case("event_json_array", _raw(lambda ctx: b"[1, 2, 3]"), Expect("event", "not_object")),
    Case("event_version_2", _raw_event(v=2), Expect("event", "bad_version")),
    Case(
        "event_missing_fields",
        _raw(lambda ctx: json.dumps({"v": 1, "exam_id": ctx.exam}).encode()),
        Expect("event", "invalid_event"),
    ),
    Case(
        "event_wrong_types",
        _raw_event(sequence="1", size=[1000]),
        Expect("event", "invalid_event"),
    ),
    Case("event_negative_sequence", _raw_event(sequence=-1), Expect("event", "invalid_event")),
    Case(
        "event_time_without_zone",
        _raw_event(uploaded_at="2026-11-27T10:00:05"),
        Expect("event", "invalid_event"),
    ),
    Case("event_over_16_kib", _raw(_huge_event), Expect("event", "too_large")),
    Case(
        "event_names_another_students_chunk",
        _raw(_other_students_chunk),
        Expect("event", "key_mismatch"),
    ),
    Case(
        "event_key_with_dot_dot",
        _raw_event(key="chunks/x/../s1/camera/000001_1.mp4"),
        Expect("event", "bad_key"),
    ),
    Case(
        "event_foreign_bucket",
        _raw_event(bucket="someone-elses-bucket"),
        Expect("event", "foreign_bucket"),
    ),
    Case(
        "event_exam_id_with_odd_characters",
        _raw_event(exam_id="bi'; DROP TABLE--"),
        Expect("event", "invalid_event"),
    ),
    Case(
        "event_hostile_partition_key",
        _raw(lambda ctx: b"not json", partition_key="\x00\x1b[31m" + "p" * 200),
        Expect("event", "not_json", exam=UNKNOWN),
    ),
    # objects whose key is not a chunk key: the router refuses them
    Case(
        "key_with_dot_dot",
        _bad_key(lambda ctx: f"chunks/{ctx.exam}/../other/camera/000001_1.mp4"),
        Expect("router", "bad_key"),
    ),
    Case(
        "key_dot_dot_as_student",
        _bad_key(lambda ctx: f"chunks/{ctx.exam}/../camera/000001_1.mp4"),
        Expect("router", "bad_key"),
    ),
    Case(
        "key_outside_the_chunk_layout",
        _bad_key(lambda ctx: f"chunks/{ctx.exam}/{STUDENT}/camera/clip.mp4"),
        Expect("router", "bad_key"),
    ),
    Case(
        "key_unknown_source",
        _bad_key(lambda ctx: f"chunks/{ctx.exam}/{STUDENT}/microphone/000001_1.mp4"),
        Expect("router", "bad_key"),
    ),
    Case(
        "key_negative_sequence",
        _bad_key(lambda ctx: f"chunks/{ctx.exam}/{STUDENT}/camera/-00001_1.mp4"),
        Expect("router", "bad_key"),
    ),
    Case(
        "key_unsupported_extension",
        _bad_key(lambda ctx: f"chunks/{ctx.exam}/{STUDENT}/camera/000001_1.avi"),
        Expect("router", "bad_key"),
    ),
    Case(
        "key_exam_id_with_odd_characters",
        _bad_key(lambda ctx: f"chunks/{ODD_EXAM}/{ctx.exam}/camera/000001_1.mp4"),
        Expect("router", "bad_key", exam=UNKNOWN),
    ),
    Case(
        "key_not_utf8",
        _notification(lambda ctx: f"chunks/{ctx.exam}/s%FF%FE/camera/000001_1.mp4"),
        Expect("router", "bad_key"),
    ),
    Case(
        "key_of_1020_bytes_multibyte",
        _bad_key(_long_key),
        Expect("router", "bad_key"),
    ),
    Case(
        "notification_not_from_s3",
        _crafted(lambda ctx: "<html>hello</html>"),
        Expect("router", "not_s3_notification", exam=UNKNOWN),
    ),
    Case(
        "notification_missing_fields",
        _crafted(lambda ctx: json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]})),
        Expect("router", "bad_notification", exam=UNKNOWN),
    ),
    Case(
        "notification_wrong_types",
        _crafted(lambda ctx: json.dumps({"Records": [7]})),
        Expect("router", "bad_notification", exam=UNKNOWN),
    ),
    Case(
        "notification_negative_size",
        _notification(lambda ctx: ctx.key(), size=-5),
        Expect("router", "invalid_event"),
    ),
]


def _exam_for(case_id: str) -> str:
    return f"bi-{case_id.replace('_', '-')}"[:64]


def _no_biometrics(logs: list[dict[str, Any]]) -> None:
    """No frame, photo or embedding in any log line: bytes and long number lists are."""
    for entry in logs:
        for name, value in entry.items():
            assert not isinstance(value, bytes | bytearray | memoryview), (entry["event"], name)
            assert not (isinstance(value, list | tuple) and len(value) >= 64), (
                entry["event"],
                name,
            )
            assert "embedding" not in name and "jpeg" not in name, (entry["event"], name)


@pytest.mark.parametrize("case", MATRIX, ids=[c.id for c in MATRIX])
def test_bad_input_is_recorded_and_isolated(
    case: Case, stack: Settings, pool: Executor, media: Media
) -> None:
    exam = _exam_for(case.id)
    # the good chunks are just under the limit, the bad one over it
    limit = {"max_chunk_bytes": len(media.good)} if case.size_limit else None
    run = run_case(stack, pool, media, exam, case.inject, settings=limit)
    expect = case.expect

    # nothing else affected: both good chunks ok, analysed in order; nothing to redeliver
    good = [(r["sequence"], r["status"]) for r in run.results if r["sequence"] != BAD_SEQ]
    assert good == [(0, "ok"), (2, "ok")]
    assert [r["faces"] for r in run.results if r["status"] == "ok"] == [1, 1]
    assert run.session is not None
    assert run.session["rules"]["camera"]["last_sequence"] == 2
    assert run.route.failed_messages == [], "nothing goes back to the queue"
    assert run.alerts == []

    # the error record a human can read
    rows = [r for r in run.errors if r["exam_id"] == (expect.exam or exam)]
    assert len(rows) == len(run.errors), "the row lands in the expected partition"
    assert [(r["stage"], r["reason"]) for r in rows] == [(expect.stage, expect.reason)]
    (row,) = rows
    assert len(row["message"]) > 20, "the message says what is wrong"
    if expect.stage == "event":
        assert "raw" in row, "the bad record is kept for inspection"
    if expect.stage == "chunk":
        (bad,) = [r for r in run.results if r["sequence"] == BAD_SEQ]
        assert (bad["status"], bad["error_reason"]) == ("error", expect.reason)
        assert bad["error"] == row["message"]
    else:
        assert BAD_SEQ not in [r["sequence"] for r in run.results]
    (outcome,) = run.outcomes
    assert outcome.errors == (0 if expect.stage == "router" else 1)
    assert outcome.results == (3 if expect.stage == "chunk" else 2)

    # the metric and the log line
    metric = "RouterErrors" if expect.stage == "router" else "ChunkErrors"
    assert [d["Reason"] for d in run.metrics if metric in d] == [expect.reason]
    logged = [(e["log_level"], e["reason"]) for e in run.logs if e["event"] in _LOG_EVENTS]
    assert logged == [("error", expect.reason)]
    _no_biometrics(run.logs)


# ---- inputs that must succeed, or change nothing twice ------------------------------------
async def _good_chunk(ctx: Ctx) -> None:
    await ctx.upload(ctx.key(), ctx.media.good)


def _summary(run: Run) -> list[tuple[int, str]]:
    return [(r["sequence"], r["status"]) for r in run.results]


def test_rotated_phone_video_is_analysed_upright(
    stack: Settings, pool: Executor, media: Media
) -> None:
    """center_focus.mp4 decodes sideways (848x480, display matrix -90): it must succeed,
    turned upright, with the face found."""
    run = run_case(stack, pool, media, "bi-rotated-phone", _good_chunk)

    assert _summary(run) == [(0, "ok"), (1, "ok"), (2, "ok")]
    middle = run.results[1]
    assert (middle["rotation"], middle["faces"]) == (270, 1)
    with Image.open(io.BytesIO(run.frames[0])) as image:  # the first chunk's, always kept
        assert image.size == (480, 848), "portrait, as the phone was held"
    assert run.errors == [] and run.alerts == []
    assert not [e for e in run.logs if e["log_level"] == "error"]


def test_a_duplicated_event_gives_one_result_row(
    stack: Settings, pool: Executor, media: Media
) -> None:
    """SQS delivers the chunk's notification twice (at least once), and the batch is
    processed twice (a worker died before its checkpoint): one row per chunk."""

    async def twice(ctx: Ctx) -> None:
        await _good_chunk(ctx)
        ctx.notification(ctx.key(), size=len(ctx.media.good))  # the redelivered copy

    run = run_case(stack, pool, media, "bi-duplicate", twice, repeat=2)

    assert run.route.routed == 4, "both copies reach the stream"
    assert _summary(run) == [(0, "ok"), (1, "ok"), (2, "ok")]
    assert [(o.results, o.duplicates, o.errors) for o in run.outcomes] == [(3, 1, 0)] * 2
    assert run.errors == [] and run.alerts == []
    assert run.session is not None and run.session["rules"]["camera"]["last_sequence"] == 2


def test_events_out_of_order_in_one_batch_are_evaluated_in_sequence_order(
    stack: Settings, pool: Executor, media: Media
) -> None:
    """The stream carries 2, then 0, then 1 (a client that retried its uploads): every chunk
    gets its row and the rules see them as 0, 1, 2."""
    run = run_case(stack, pool, media, "bi-out-of-order", _first_chunk, before=(2,), after=(1,))

    assert _summary(run) == [(0, "ok"), (1, "ok"), (2, "ok")]
    processed = sorted(run.results, key=lambda r: r["processed_at"])
    assert [r["sequence"] for r in processed] == [0, 1, 2]
    assert run.session is not None and run.session["rules"]["camera"]["last_sequence"] == 2
    assert run.errors == [] and run.alerts == []


async def _first_chunk(ctx: Ctx) -> None:
    await ctx.upload(ctx.key(0), ctx.media.good)


def test_a_late_chunk_gets_its_row_and_changes_no_rule_state(
    stack: Settings, pool: Executor, media: Media
) -> None:
    """Chunk 1 arrives in a later batch than chunk 2: its result row is written, the rules
    (which evaluated 2 already) ignore it, as docs/architecture.md documents."""
    run = run_case(stack, pool, media, "bi-late", _good_chunk, before=(0, 2), after=(), batches=2)

    assert _summary(run) == [(0, "ok"), (1, "ok"), (2, "ok")]
    assert [o.results for o in run.outcomes] == [2, 1]
    assert run.session is not None and run.session["rules"]["camera"]["last_sequence"] == 2
    assert run.errors == [] and run.alerts == []


# ---- the decompression bomb's memory ------------------------------------------------------
# The peak RSS of the process's own memory (VmHWM): ru_maxrss would not do, Linux carries
# it over from the parent across fork and exec, so pytest's own peak would hide the growth.
_MEASURE = """
import json, sys
from proctoring.frames import FrameError, extract_frame

def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

data = open(sys.argv[1], "rb").read()
before = peak_kib()
try:
    frame = extract_frame(data, max_pixels=int(sys.argv[2]), position="middle")
    outcome = f"{frame.width}x{frame.height}"
except FrameError as exc:
    outcome = exc.reason
print(json.dumps({"outcome": outcome, "growth_mib": (peak_kib() - before) / 1024}))
"""


def _extract_in_fresh_process(path: Path, max_pixels: int) -> dict[str, Any]:
    """Extract in a new interpreter; the growth of its peak RSS is the extraction's."""
    if not Path("/proc/self/status").exists():
        pytest.skip("peak memory is read from /proc (Linux)")
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), str(max_pixels)],
        capture_output=True,
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    result: dict[str, Any] = json.loads(done.stdout.decode().splitlines()[-1])
    return result


def test_decompression_bombs_are_refused_with_bounded_memory(media: Media, tmp_path: Path) -> None:
    """779-byte files that declare 16383x16383 and 4096x4096 frames: refused before the
    decoder allocates, measured as the peak RSS of a fresh process. The control decodes
    the 4096x4096 one with the limit lifted, to show the measure sees the allocation
    (~135 MiB: the YUV frame, its RGB copy and Pillow's image)."""
    limit = Settings().max_frame_pixels
    paths = {}
    for name in ("bomb_16k", "bomb_hidden_in_bitstream"):
        paths[name] = tmp_path / f"{name}.webm"
        paths[name].write_bytes(media.objects[name])

    honest = _extract_in_fresh_process(paths["bomb_16k"], limit)
    hidden = _extract_in_fresh_process(paths["bomb_hidden_in_bitstream"], limit)
    control = _extract_in_fresh_process(paths["bomb_hidden_in_bitstream"], 2**31 - 1)

    assert honest["outcome"] == "too_large"
    assert hidden["outcome"] == "truncated"  # the decoder's own max_pixels refused the frame
    assert control["outcome"] == "4096x4096"
    assert honest["growth_mib"] < 16 and hidden["growth_mib"] < 16, (honest, hidden)
    assert control["growth_mib"] > 64, control

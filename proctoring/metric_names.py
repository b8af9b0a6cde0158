"""Every metric name the service emits, in one place.

Dashboards and alarms (``infrastructure/template.yaml``) and the operations guide's metrics
table (``docs/operations.md``) read these names, so they are stable: a member's value is
what CloudWatch sees and never changes; a new metric is a new member here and a new row in
that table. Members are spelt as their values, so a search for a metric's name finds where
it is declared and every place that emits it. Tests hold it together:
``tests/proctoring/test_metric_names.py`` (no code emits an undeclared name),
``tests/test_docs.py`` (the table names exactly these) and
``tests/infrastructure/test_template.py`` (alarms and the dashboard read only these).

``Metrics.add`` (``proctoring.metrics``) takes a :class:`MetricName`; a ``StrEnum`` member is
a ``str``, so the EMF documents and ``Metrics.totals()`` are keyed by the plain name.
"""

from __future__ import annotations

from enum import StrEnum, unique

__all__ = ["MetricName"]


@unique
class MetricName(StrEnum):
    """One metric of the ``proctoring`` namespace; the comment above each says what it counts."""

    # ---- consumer: chunks and their results ---------------------------------------------
    #: result rows written (Count)
    ChunksProcessed = "ChunksProcessed"
    #: bad events or chunks, by ``Reason`` (Count)
    ChunkErrors = "ChunkErrors"
    #: chunks recorded but not analysed (exam not started, source off, same moment), by
    #: ``Reason`` (Count)
    ChunksNotAnalysed = "ChunksNotAnalysed"
    #: a second object for a sequence that has its result: flagged, never analysed (Count)
    ChunksReplaced = "ChunksReplaced"
    #: chunks processed again whose result row stayed as written first (Count)
    ChunksRedelivered = "ChunksRedelivered"
    #: a re-delivered chunk's frame differed from the one stored first; the first stays (Count)
    EvidenceKept = "EvidenceKept"
    #: new incidents, by ``Rule`` (Count)
    AlertsRaised = "AlertsRaised"
    #: browser integrity events written to the timeline, by ``Kind`` (Count)
    IntegrityEvents = "IntegrityEvents"
    #: integrity events sent or delivered again, written once (Count)
    IntegrityDuplicates = "IntegrityDuplicates"
    #: Rekognition calls made (AWS) or planned by the schedule (local), by ``Api`` (Count)
    RekognitionCalls = "RekognitionCalls"
    #: speech heard in the chunks' audio (Seconds)
    SpeechSeconds = "SpeechSeconds"
    #: one frame extracted from a chunk, pool queueing included (Milliseconds)
    FrameExtractionMs = "FrameExtractionMs"
    #: frames decoded to extract a chunk's frame: 1 when a keyframe sits where the frame is
    #: taken (Count)
    FramesDecoded = "FramesDecoded"
    #: one frame analysed (Milliseconds)
    AnalysisMs = "AnalysisMs"
    #: end to end: S3 ObjectCreated -> result row written (Milliseconds)
    ChunkLatencyMs = "ChunkLatencyMs"
    #: S3 ObjectCreated of the raising chunk -> alert published to SNS (Milliseconds)
    AlertLatencyMs = "AlertLatencyMs"
    #: alerts the outbox sweeper published because their worker did not (Count)
    AlertsSwept = "AlertsSwept"

    # ---- consumer: batches, shards and leases ---------------------------------------------
    #: records per batch (Count)
    BatchSize = "BatchSize"
    #: Kinesis records checkpointed (Count)
    RecordsProcessed = "RecordsProcessed"
    #: one batch: processing and checkpoint (Milliseconds)
    BatchLatencyMs = "BatchLatencyMs"
    #: how far the reader is behind the tip of its shard (Milliseconds)
    MillisBehindLatest = "MillisBehindLatest"
    #: GetRecords throttled after botocore's retries, by ``Operation`` (Count)
    Throttles = "Throttles"
    #: checkpoints refused because the lease was lost (Count)
    CheckpointFailures = "CheckpointFailures"
    #: a batch failed and will be tried again, by ``Poison`` (Count)
    BatchFailures = "BatchFailures"
    #: records set aside after ``PROCTOR_POISON_ATTEMPTS`` failures (Count)
    RecordsParked = "RecordsParked"
    #: leases this worker holds (Count)
    LeasesHeld = "LeasesHeld"

    # ---- chunk router -------------------------------------------------------------------
    #: chunk events put into Kinesis (Count)
    EventsRouted = "EventsRouted"
    #: objects that are not chunks, by ``Reason`` (Count)
    RouterErrors = "RouterErrors"
    #: capture artifacts skipped on purpose (proctor, content share, audio/), by ``Reason``
    #: (Count)
    RouterIgnored = "RouterIgnored"
    #: SQS messages handed back for redelivery after Kinesis kept rejecting them (Count)
    RouterRetriesExhausted = "RouterRetriesExhausted"
    #: S3 ObjectCreated -> chunk event accepted by Kinesis (Milliseconds)
    RouterLatencyMs = "RouterLatencyMs"

    # ---- API ----------------------------------------------------------------------------
    #: API requests, by ``Route`` and ``Status`` class (Count)
    ApiRequests = "ApiRequests"
    #: handling time per request, token check included, by ``Route`` (Milliseconds)
    ApiLatencyMs = "ApiLatencyMs"

"""Every setting of the service, named once.

Each field is read from the environment variable ``PROCTOR_<FIELD>`` (upper
case); an explicit keyword argument wins over the environment, which wins over
the default. Settings are resolved once, at the edge (``main``, a Lambda
handler, the CLI), and passed in from there: nothing else reads the
environment.

``docs/operations.md`` lists the variables with their defaults.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ResourceNames", "Settings"]

_REPO_ROOT = Path(__file__).resolve().parents[1]


class ResourceNames:
    """Physical names of the deployed resources, derived from one prefix.

    The CloudFormation template in ``infrastructure/`` derives the same names
    from its ``Prefix`` parameter, so code and deployment agree by
    construction.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.chunks_bucket = f"{prefix}-chunks"
        self.frames_bucket = f"{prefix}-frames"
        self.stream = f"{prefix}-chunks"
        self.chunk_events_queue = f"{prefix}-chunk-events"
        self.alerts_topic = f"{prefix}-alerts.fifo"
        self.alerts_queue = f"{prefix}-alerts.fifo"
        self.results_table = f"{prefix}-results"
        self.alerts_table = f"{prefix}-alerts"
        self.sessions_table = f"{prefix}-sessions"
        self.faces_table = f"{prefix}-faces"
        self.errors_table = f"{prefix}-errors"
        self.leases_table = f"{prefix}-leases"
        self.exams_table = f"{prefix}-exams"
        self.audit_table = f"{prefix}-audit"


class Settings(BaseSettings):
    """Configuration of every deployable; see the module docstring."""

    model_config = SettingsConfigDict(env_prefix="PROCTOR_", frozen=True, extra="forbid")

    # Where AWS is. ``endpoint_url`` unset means real AWS; the local stack sets it
    # to its emulator on 127.0.0.1.
    endpoint_url: str | None = None
    # Services served elsewhere than endpoint_url, by botocore's service name: the local stack
    # runs some in emulator processes of their own (`proctor up --split`), e.g.
    # PROCTOR_ENDPOINT_URLS='{"dynamodb": "http://127.0.0.1:4567"}'. Wins over endpoint_url.
    endpoint_urls: dict[str, str] = Field(default_factory=dict)
    region: str = "us-east-1"
    prefix: str = Field(default="proctor", pattern=r"^[a-z0-9][a-z0-9-]{1,40}$")
    # From the stack's outputs (AlertsTopicArn); the local stack fills it in.
    alerts_topic_arn: str | None = None
    call_timeout: float = Field(default=10.0, gt=0, description="seconds per AWS call")
    # botocore's client-side check of every request's parameters against the service model
    # (``proctoring.aws``): on by default (tests, the local stack, the CLI); the consumer's
    # ECS task turns it off, see docs/operations.md.
    validate_requests: bool = True

    # Local stack.
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="emulator port; 0 picks a free one")
    data_dir: Path = _REPO_ROOT.parent / "shared" / "data"

    # Chunks.
    chunk_seconds: float = Field(default=5.0, gt=0)
    max_chunk_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    max_frame_pixels: int = Field(default=4096 * 2160, gt=0)
    retention_days: int = Field(default=30, ge=1)

    # Consumer.
    batch_size: int = Field(default=100, ge=1, le=10_000, description="records per GetRecords")
    concurrency: int = Field(default=16, ge=1, description="chunks in flight per worker")
    # Processes of the frame pool: twice the CPUs, since a chunk's job waits on its GET about
    # as long as it decodes (consumer.chunk_get; with S3 in AWS longer: docs/operations.md).
    cpu_workers: int = Field(default=2 * (os.cpu_count() or 1), ge=1)
    # GetRecords on one shard: every min_get_interval while records come (Kinesis allows 5
    # calls/s per shard, shared by every reader of the stream), every poll_interval when idle
    # (the mean wait a new chunk sees is half of it: docs/benchmarks.md, "Where the time goes").
    poll_interval: float = Field(default=0.25, gt=0, description="seconds between empty polls")
    min_get_interval: float = Field(default=0.2, gt=0, description="seconds between GetRecords")
    read_ahead: int = Field(default=2, ge=1, description="batches queued per shard")
    # Reads of a shard processed at once; a student's records still in order (consumer/shards.py)
    reads_in_flight: int = Field(default=2, ge=1, description="overlapping batches per shard")
    kinesis_endpoint_url: str | None = None  # Kinesis elsewhere (kinesis-local); else endpoint_url
    # Enhanced fan-out (consumer/fan_out.py): the stream consumer's name; unset polls GetRecords.
    fan_out_consumer: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9_.-]{1,128}$")
    worker_id: str | None = None  # default: host-pid-random, unique per process
    lease_duration: float = Field(default=10.0, gt=0, description="KCL failover time, seconds")
    take_interval: float = Field(default=1.0, gt=0, description="seconds between balancing")
    shard_sync_interval: float = Field(default=10.0, gt=0, description="seconds between ListShards")
    shutdown_timeout: float = Field(default=30.0, gt=0, description="seconds to finish on SIGTERM")
    # Local stack only: SQS pollers feeding the chunk router (Lambda's event source in AWS).
    # More keep up with hundreds of students, but may reorder chunks uploaded at once.
    router_pollers: int = Field(default=1, ge=1, le=50)
    poison_attempts: int = Field(default=5, ge=1, description="failures before a record is parked")
    retry_backoff: float = Field(default=1.0, gt=0, description="first pause between tries")
    retry_max_backoff: float = Field(default=30.0, gt=0, description="longest pause between tries")
    outbox_sweep_interval: float = Field(default=30.0, gt=0, description="seconds between sweeps")
    outbox_grace: float = Field(default=60.0, ge=0, description="unpublished this long: sweep it")
    # Student sessions a worker keeps between batches (consumer.sessions); 0 reads every batch.
    session_cache_size: int = Field(default=5000, ge=0, description="sessions kept per worker")
    # Students whose saves one transaction carries at most (consumer.sessions.SaveGroup): 50 with
    # a row each fill its 100 items; 1 writes each student's on its own, as soon as it is ready.
    save_group_students: int = Field(default=50, ge=1, description="students per transaction")
    # ... and the longest the first of them waits for the others (a slow student, a big batch).
    save_group_wait: float = Field(default=0.05, gt=0, description="seconds a save waits at most")

    # Analysis and rules.
    engine: Literal["local", "rekognition", "fixed"] = "local"
    # Load tests: PROCTOR_ENGINE=fixed answers every frame after this many seconds.
    fixed_latency: float = Field(default=0.1, ge=0, le=60, description="seconds")
    # Chosen on the development half of a by-person split of shared/data for a
    # false-accusation budget (FNMR <= 1 % on frame-to-frame pairs); test-half error
    # rates in docs/benchmarks.md, "Identity: error rates" (python -m bench.identity).
    match_threshold: float = Field(default=0.54, gt=0, description="face distance above = mismatch")
    # Camera frames enrolled at exam start must be this close (median) to the registration
    # photo: the development half's threshold for photo pairs (FNMR 0 of 308 there).
    enrol_threshold: float = Field(default=0.62, gt=0, description="frames vs photo, median")
    tolerance: int = Field(default=2, ge=1, description="consecutive chunks before an alert")
    detect_upsample: int = Field(default=1, ge=0, le=2)
    # "regions": native size first, upsampled only where a small face may be (~2.4x faster
    # than "full", the same faces on the eval suite and the same recall on the hand-written
    # suite since the cut face is a share of its area, docs/benchmarks.md); "full": the
    # whole frame upsampled (analysis/faces.py, find_faces), for group photos of tiny faces.
    detect_strategy: Literal["regions", "full"] = "regions"
    # Which frame of a chunk is analysed: "middle" catches what the student does during the
    # chunk, not at its first instant (docs/architecture.md, "Which frame").
    frame_position: Literal["first", "middle"] = "middle"
    gaze_offset: float = Field(default=0.11, gt=0, lt=0.5, description="pupil ratio off 0.5")
    # Local object detector (optional): an ONNX model and its class names (analysis/objects.py).
    object_model: Path | None = None
    object_labels: Path | None = None
    object_min_confidence: float = Field(default=50.0, ge=0, le=100)
    # Rekognition engine. Its endpoint is never PROCTOR_ENDPOINT_URL (no emulator has it).
    rekognition_endpoint_url: str | None = None
    rekognition_collection: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9_.-]{1,255}$")
    rekognition_rps: float = Field(default=5.0, gt=0, description="account budget, all workers")
    rekognition_concurrency: int = Field(default=4, ge=1, description="in flight per API")
    match_similarity: float = Field(default=90.0, ge=0, le=100)
    eye_direction_limit: float = Field(default=15.0, gt=0, le=90)
    # Cost-aware scheduling (analysis/scheduling.py).
    faces_every: int = Field(default=12, ge=1, description="chunks between paid face checks")
    identity_every: int = Field(default=12, ge=1, description="chunks between identity checks")
    objects_every: int = Field(default=6, ge=1, description="chunks between object checks")
    rekognition_gate: bool = True
    similar_below: float = Field(default=3.0, ge=0, le=255, description="grey levels")
    max_repeats: int = Field(default=6, ge=0, description="repeated frames carried over in a row")
    # Identity is checked again when a face's crop changed by more than this since the last
    # check (grey levels, analysis/scheduling.py; chosen by `python -m bench.face_change`).
    face_change_above: float = Field(default=0.92, ge=0, le=255)
    policy_cache_seconds: float = Field(default=30.0, ge=0)

    # Exam service (API, identity, Chime). The user pool's JWKS is fetched from ``jwks_url``
    # (default: the issuer's /.well-known/jwks.json); the local stack points it at the emulator,
    # whose tokens name the real AWS issuer.
    user_pool_id: str | None = None
    user_pool_client_id: str | None = None
    jwks_url: str | None = None
    api_port: int = Field(default=0, ge=0, le=65535, description="local API server; 0 = free")
    static_dir: Path | None = None  # files the local server serves under / (the web app)
    consent_version: str = Field(default="2026-11", min_length=1, max_length=40)
    # Whom a student asks about their data, to decline or for accommodations (the consent text).
    privacy_contact: str = Field(
        default="your exam's proctor or your university's data protection officer",
        min_length=3,
        max_length=200,
    )
    upload_url_seconds: int = Field(default=600, ge=60, le=7 * 24 * 3600)
    uploads_per_request: int = Field(default=12, ge=1, le=120, description="chunks per request")
    # Analyse only chunks of exams started through the exam service; the deployed consumer and
    # `proctor serve` turn it on, the recordings-only tools (up, demo, eval, replay) leave it off.
    exam_gate: bool = False
    audit_retention_days: int = Field(default=2190, ge=1)
    # Chime SDK (AWS): unset uses the local channel (messages in the exams table).
    chime_app_instance_arn: str | None = None
    chime_bearer_arn: str | None = None  # the AppInstanceUser the service acts as
    chime_media_region: str | None = None  # default: region
    # A media capture pipeline per started exam writes to the chunks bucket through this role
    # (the bucket is KMS-encrypted with data_key_arn); unset: no capture pipeline.
    chime_capture_role_arn: str | None = None
    data_key_arn: str | None = None
    channel_messages_per_second: float = Field(default=30.0, gt=0, description="Chime limit")

    # Observability.
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_namespace: str = "Proctoring"

    @cached_property
    def names(self) -> ResourceNames:
        return ResourceNames(self.prefix)

    @property
    def collection_id(self) -> str:
        """The Rekognition face collection (default ``<prefix>-faces``)."""
        return self.rekognition_collection or f"{self.prefix}-faces"

    @property
    def issuer(self) -> str | None:
        """The user pool's token issuer, as Cognito writes it into ``iss``."""
        if not self.user_pool_id:
            return None
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"

    @property
    def keys_url(self) -> str | None:
        """Where the pool's signing keys are published (``jwks_url`` or the issuer's)."""
        if self.jwks_url:
            return self.jwks_url
        return f"{self.issuer}/.well-known/jwks.json" if self.issuer else None

    @property
    def uses_chime(self) -> bool:
        return self.chime_app_instance_arn is not None

    @property
    def is_local(self) -> bool:
        return self.endpoint_url is not None

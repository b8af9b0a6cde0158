"""A batch of Kinesis records, what processing it came to, and how it can fail.

``ChunkProcessor.process`` (``consumer.processor``) takes a sequence of :class:`Record`
and returns a :class:`BatchOutcome` once every effect is durable, or raises
:class:`BatchFailed`. The readers of a shard (``consumer.shards``, ``consumer.kcl``) and
the retry loop (``consumer.poison``) speak these types, not the processor's internals.

``is_poison`` tells the two kinds of failure apart: AWS unavailable (throttled, timed
out, unreachable, refused: processing again succeeds once it is back) or the records
themselves (AWS, or botocore before sending it, rejected the request as invalid, or an
error no check anticipated:
processing again may never succeed, so the record is parked after a bounded number of
attempts).

Errors::

    ProctoringError
     └── BatchFailed    the batch must be processed again (``poison``: it may never succeed)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from proctoring.analysis.base import AnalysisError
from proctoring.dynamo import InvalidItem
from proctoring.errors import ProctoringError
from proctoring.storage import StorageError

__all__ = ["BatchFailed", "BatchOutcome", "Record", "is_poison"]


class BatchFailed(ProctoringError):
    """The batch must be processed again.

    ``poison`` tells why it failed: ``False`` when AWS was unavailable (throttled, timed
    out, unreachable, refused) - processing again will succeed once it is back, however
    long that takes; ``True`` when the failure belongs to the records themselves (AWS
    rejected the request as invalid, or the pipeline hit an error no check anticipated) -
    processing again may never succeed, so the caller parks the record after a bounded
    number of attempts (``consumer.poison``).
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
    if isinstance(exc, InvalidItem):  # DynamoDB refused what was written
        return True
    if isinstance(exc, StorageError) and exc.__cause__ is not None:
        return is_poison(exc.__cause__)
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") in _REQUEST_ERRORS
    if isinstance(exc, ParamValidationError):  # botocore refused the request before sending it
        return True
    return not isinstance(exc, (*_UNAVAILABLE, StorageError))


@dataclass(frozen=True)
class Record:
    """A Kinesis record as the processor needs it."""

    sequence_number: str
    data: bytes
    partition_key: str = ""
    arrived_at: float | None = None
    """When Kinesis took the record (ApproximateArrivalTimestamp), epoch seconds."""
    read_at: float | None = None
    """When this worker read it (GetRecords returned), epoch seconds."""


@dataclass
class BatchOutcome:
    """What a batch came to, counted; outcomes add up (``a + b``)."""

    results: int = 0
    errors: int = 0
    duplicates: int = 0
    alerts: int = 0
    parked: int = 0

    def __add__(self, other: BatchOutcome) -> BatchOutcome:
        return BatchOutcome(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(BatchOutcome))
        )

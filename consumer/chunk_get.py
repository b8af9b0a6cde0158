"""A chunk's GET, made where the chunk is decoded: in the process-pool worker.

The event loop signs a short-lived GET URL for the chunk (:func:`presign`: botocore's
``generate_presigned_url`` on the consumer's S3 client, SigV4, ``EXPIRES`` seconds) and sends
it with the extraction job; the worker fetches it with urllib3 (:func:`fetch`: one
``PoolManager`` per worker process, its connections kept), checks the size limit from
``Content-Length`` before reading the body and again while reading, hashes the bytes
(SHA-256) and reads the S3 version from ``x-amz-version-id``. The body never passes through
aiobotocore, the event loop or the pipe to the pool: in the consumer process, that was
~3-4 ms of CPU a chunk (request, aiohttp's receive, botocore's CRC32 check, the hash and
pickling the bytes to the worker; docs/benchmarks.md).

Retries are botocore's standard mode's: up to ``attempts`` tries on connection errors,
timeouts and 500/502/503/504 (``SlowDown``), exponential backoff with jitter. What the GET
ends with comes back as a value (:class:`Failed`), never raised in the worker, so the
requests it sent are counted either way (``Fetched.requests``, ``Failed.requests``), and
:func:`failure` turns it into what the botocore call raised before: a 404 is bad input
(``FrameError`` ``missing_object``); S3 unreachable or failing after the retries, or a URL
that expired while the job waited, is AWS unavailable (:class:`ChunkUnavailable`, an
``OSError``: the batch is tried again, ``consumer.batch.is_poison``); any other S3 error is
the ``ClientError`` botocore would have raised.

The URL is a credential for one object for ``EXPIRES`` seconds: it is never logged. It is
kept out of ``repr`` (:class:`ChunkGet`), out of every error message here (urllib3's
``MaxRetryError`` names it: its text is not used), and out of urllib3's own log lines (its
retry warnings quote the URL: a filter cuts the signed query; tests/consumer/test_chunk_get.py).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import urllib3
from botocore.exceptions import ClientError
from urllib3.exceptions import HTTPError, MaxRetryError

from proctoring.frames import FrameError

__all__ = [
    "EXPIRES",
    "ChunkGet",
    "ChunkUnavailable",
    "Failed",
    "Fetched",
    "failure",
    "fetch",
    "presign",
]

EXPIRES = 300
"""Seconds a chunk's GET URL is valid: the job's wait in the pool's queue and its retries
fit in it many times over; a URL that expired anyway fails the batch, which is tried again
with new URLs."""
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_CHUNK = 256 * 1024  # bytes read at a time (the size limit is checked between reads)
_POOL: urllib3.PoolManager | None = None


class ChunkUnavailable(ConnectionError):
    """S3 could not be reached or kept failing for a chunk's GET: AWS unavailable."""


@dataclass(frozen=True)
class ChunkGet:
    """What a worker needs to GET one chunk. ``url`` is presigned: never in ``repr``."""

    url: str = field(repr=False)
    where: str  # s3://bucket/key, for messages
    limit: int  # bytes
    timeout: float  # seconds, to connect and per read
    attempts: int = 5


@dataclass(frozen=True)
class Fetched:
    data: bytes
    digest: str  # SHA-256 of ``data``
    version: str | None  # the S3 version read (None in an unversioned bucket)
    requests: int  # HTTP requests sent (a retry counts)


@dataclass(frozen=True)
class Failed:
    """How a GET ended without the chunk: ``status`` None when no answer came at all."""

    status: int | None
    code: str
    message: str
    requests: int
    too_large: int | None = None  # bytes, when the chunk is over the limit


async def presign(s3: Any, bucket: str, key: str, *, limit: int, seconds: float) -> ChunkGet:
    """A GET URL for ``s3://bucket/key`` signed by ``s3`` (the consumer's client: its
    endpoint, region and credentials), valid ``EXPIRES`` seconds; ``seconds`` to connect
    and per read when it is fetched."""
    url = await s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=EXPIRES
    )
    return ChunkGet(url=url, where=f"s3://{bucket}/{key}", limit=limit, timeout=seconds)


_SIGNED_QUERY = re.compile(r"\?[^\s'\"]*Signature=[^\s'\"]*")


class _Unsigned(logging.Filter):
    """Cuts a signed URL's query out of a log record: urllib3 names the URL in its retry
    warnings and debug lines, and a presigned one is a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Signature=" in message:
            record.msg, record.args = _SIGNED_QUERY.sub("?(signed)", message), ()
        return True


for _name in ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.poolmanager"):
    logging.getLogger(_name).addFilter(_Unsigned())


def _pool() -> urllib3.PoolManager:
    """This worker process's connection pool, made on first use and kept."""
    global _POOL
    if _POOL is None:
        _POOL = urllib3.PoolManager(num_pools=4, maxsize=4)
    return _POOL


def fetch(get: ChunkGet) -> Fetched | Failed:
    """GET the chunk (in a pool worker); see the module docstring."""
    retry = urllib3.Retry(
        total=get.attempts - 1,
        status_forcelist=_RETRY_STATUS,
        allowed_methods={"GET"},
        backoff_factor=0.1,
        backoff_max=20,
        backoff_jitter=0.1,
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    try:
        response = _pool().request(
            "GET",
            get.url,
            retries=retry,
            preload_content=False,
            timeout=urllib3.Timeout(connect=get.timeout, read=get.timeout),
        )
    except MaxRetryError as exc:
        reason = type(exc.reason).__name__ if exc.reason is not None else "retries"
        return Failed(None, reason, f"no answer after {get.attempts} tries", get.attempts)
    except HTTPError as exc:  # no retry left to take it: one request
        return Failed(None, type(exc).__name__, "no answer", 1)
    sent = 1 + len(response.retries.history) if response.retries is not None else 1
    try:
        if response.status != 200:
            code, message = _s3_error(response.read(64 * 1024))
            return Failed(response.status, code, message, sent)
        length = response.headers.get("Content-Length")
        if length is not None and int(length) > get.limit:
            return Failed(200, "too_large", "", sent, too_large=int(length))
        if length is not None:  # S3 always says: read at once, never more (urllib3 enforces
            data = response.read()  # Content-Length); pieces joined cost more than the hash
        else:
            pieces, size = [], 0
            for piece in response.stream(_CHUNK):
                pieces.append(piece)
                size += len(piece)
                if size > get.limit:
                    return Failed(200, "too_large", "", sent, too_large=size)
            data = b"".join(pieces)
        version = response.headers.get("x-amz-version-id")
    except HTTPError as exc:  # cut mid-body (a short read): the batch tries it again
        return Failed(None, type(exc).__name__, "the body was cut", sent)
    finally:
        if response.length_remaining != 0:  # a body left unread (too large, an error's, cut):
            response.close()  # this connection is not used again
        response.release_conn()
    digest = hashlib.sha256(data).hexdigest()
    return Fetched(data, digest, None if version in (None, "null") else version, sent)


def failure(failed: Failed, get: ChunkGet) -> Exception:
    """The exception a failed GET stands for (module docstring)."""
    if failed.too_large is not None:
        return FrameError(
            f"chunk is {failed.too_large} bytes, over the {get.limit} limit", reason="too_large"
        )
    if failed.status == 404:
        return FrameError(
            f"chunk {get.where} does not exist ({failed.code})", reason="missing_object"
        )
    if failed.status is None or failed.status >= 500 or _expired(failed):
        return ChunkUnavailable(
            f"S3 GET of {get.where} failed: {failed.status or 'no answer'} {failed.code}"
            f" {failed.message}".rstrip()
        )
    return ClientError(
        {
            "Error": {"Code": failed.code, "Message": failed.message},
            "ResponseMetadata": {"HTTPStatusCode": failed.status},
        },
        "GetObject",
    )


def _expired(failed: Failed) -> bool:
    return failed.status == 403 and "expired" in failed.message.lower()


_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]{0,300})</Message>")


def _s3_error(body: bytes) -> tuple[str, str]:
    """S3's error code and message from its XML error body (empty when there is none): two
    elements of a known shape, matched rather than parsed (no XML parser meets the body)."""
    code, message = _CODE.search(body), _MESSAGE.search(body)
    return (
        code.group(1).decode("utf-8", "replace") if code else "",
        message.group(1).decode("utf-8", "replace") if message else "",
    )

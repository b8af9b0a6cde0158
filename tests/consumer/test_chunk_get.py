"""The chunk's GET in the pool worker (``consumer.chunk_get``): signed, fetched, checked.

Against the emulator over HTTP (moto's server, path-style on 127.0.0.1), through
``tests.faults.S3Front`` where S3 must throttle or fail; the URL for real AWS
(virtual-hosted, SigV4, the region's endpoint) against botocore's own signer, offline.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import urllib.parse
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from consumer.batch import is_poison
from consumer.chunk_get import EXPIRES, ChunkGet, ChunkUnavailable, Failed, failure, fetch, presign
from consumer.chunk_job import read_chunk
from infrastructure.emulator import Emulator, free_port
from proctoring.aws import client_kwargs, sync_client
from proctoring.frames import FrameError
from proctoring.settings import Settings
from tests.conftest import DATA, needs_data
from tests.faults import S3Front

BUCKET = "chunk-get"


async def _presign(settings: Settings, key: str, *, limit: int = 10_000_000) -> ChunkGet:
    session = get_session()
    async with session.create_client("s3", **client_kwargs(settings, "s3")) as s3:
        return await presign(s3, BUCKET, key, limit=limit, seconds=5.0)


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}


@pytest.fixture
def local(emulator: Emulator) -> Settings:
    settings = Settings(endpoint_url=emulator.endpoint_url)
    s3 = sync_client(settings, "s3")
    if not any(b["Name"] == BUCKET for b in s3.list_buckets()["Buckets"]):
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return settings


def test_the_url_for_aws_is_sigv4_virtual_hosted_in_the_region_and_short_lived(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    get = asyncio.run(_presign(Settings(region="eu-west-1"), "chunks/e/s/camera/000001_1.mp4"))
    parts = urllib.parse.urlsplit(get.url)
    assert (parts.scheme, parts.netloc) == ("https", f"{BUCKET}.s3.eu-west-1.amazonaws.com")
    assert parts.path == "/chunks/e/s/camera/000001_1.mp4"
    query = _query(get.url)
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Credential"].endswith("/eu-west-1/s3/aws4_request")
    assert query["X-Amz-Expires"] == str(EXPIRES) and EXPIRES <= 600
    assert len(query["X-Amz-Signature"]) == 64
    assert get.url not in repr(get) and "Signature" not in repr(get)


def test_a_chunk_is_read_from_the_emulator_with_its_hash_and_version(local: Settings) -> None:
    body = bytes(range(256)) * 3000
    put = sync_client(local, "s3").put_object(Bucket=BUCKET, Key="chunks/one.mp4", Body=body)
    get = asyncio.run(_presign(local, "chunks/one.mp4"))
    assert urllib.parse.urlsplit(get.url).path == f"/{BUCKET}/chunks/one.mp4"  # path-style
    assert "X-Amz-Signature" in _query(get.url)
    got = fetch(get)
    assert not isinstance(got, Failed)
    assert got.data == body and got.digest == hashlib.sha256(body).hexdigest()
    assert got.version == put["VersionId"] and got.requests == 1


def test_bad_input_and_outages_end_as_the_botocore_call_did(local: Settings) -> None:
    s3 = sync_client(local, "s3")
    s3.put_object(Bucket=BUCKET, Key="chunks/big.mp4", Body=b"x" * 5000)

    missing = asyncio.run(_presign(local, "chunks/none.mp4"))
    gone = fetch(missing)
    assert isinstance(gone, Failed) and gone.status == 404 and gone.requests == 1
    error = failure(gone, missing)
    assert isinstance(error, FrameError) and error.reason == "missing_object"

    big = asyncio.run(_presign(local, "chunks/big.mp4", limit=4999))
    over = fetch(big)
    assert isinstance(over, Failed) and over.too_large == 5000  # from Content-Length
    error = failure(over, big)
    assert isinstance(error, FrameError) and error.reason == "too_large"

    forbidden = failure(Failed(403, "AccessDenied", "Access Denied", 1), missing)
    assert isinstance(forbidden, ClientError)  # as botocore raised it: judged by its code
    expired = failure(Failed(403, "AccessDenied", "Request has expired", 1), missing)
    assert isinstance(expired, ChunkUnavailable) and not is_poison(expired)  # new URLs next try


def test_throttling_is_retried_and_an_outage_is_aws_unavailable_never_logging_the_url(
    local: Settings, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    body = b"chunk" * 1000
    sync_client(local, "s3").put_object(Bucket=BUCKET, Key="chunks/throttled.mp4", Body=body)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # what its retries would say
    with S3Front(local.endpoint_url or "") as front:
        gets = 0

        def twice(method: str, path: str) -> bool:
            nonlocal gets
            gets += method == "GET"
            return gets <= 2

        front.fail = twice
        get = asyncio.run(_presign(front.settings(local), "chunks/throttled.mp4"))
        got = fetch(get)
        assert not isinstance(got, Failed) and got.data == body
        assert got.requests == 3, "two 503 SlowDown, then the chunk: every request counted"

        front.fail = lambda method, path: True
        down = fetch(get)
        assert isinstance(down, Failed) and (down.status, down.code) == (503, "SlowDown")
        assert down.requests == get.attempts
        outage = failure(down, get)
        assert isinstance(outage, ChunkUnavailable) and not is_poison(outage)

    refused: dict[str, Any] = {"url": f"http://127.0.0.1:{free_port()}/b/k?X-Amz-Signature=s"}
    nobody = ChunkGet(**refused, where="s3://b/k", limit=10, timeout=1.0, attempts=2)
    unreachable = fetch(nobody)
    assert isinstance(unreachable, Failed) and unreachable.status is None
    assert unreachable.requests == 2
    error = failure(unreachable, nobody)
    assert isinstance(error, ChunkUnavailable) and not is_poison(error)

    said = caplog.text + "".join(capsys.readouterr()) + str(outage) + str(error)
    assert "Signature" not in said and "X-Amz-Credential" not in said


@needs_data
def test_the_job_extracts_only_the_bytes_the_sequences_row_was_written_for(
    local: Settings,
) -> None:
    """``read_chunk``: other bytes than the row's (``same_as``) or another key (``extract``
    False) are hashed, not decoded; the row's own bytes give the frame."""
    video = (DATA / "video" / "short_hamilton_clip.mp4").read_bytes()
    sync_client(local, "s3").put_object(Bucket=BUCKET, Key="chunks/clip.mp4", Body=video)
    get = asyncio.run(_presign(local, "chunks/clip.mp4", limit=len(video)))
    digest = hashlib.sha256(video).hexdigest()
    job = {"max_pixels": 1920 * 1080, "position": "first"}
    other = read_chunk(get, **job, same_as="0" * 64)  # type: ignore[arg-type]
    moved = read_chunk(get, **job, extract=False)  # type: ignore[arg-type]
    same = read_chunk(get, **job, same_as=digest)  # type: ignore[arg-type]
    assert (other.digest, other.frame) == (digest, None)
    assert (moved.digest, moved.frame) == (digest, None)
    assert same.digest == digest and same.frame is not None and same.frame.jpeg[:2] == b"\xff\xd8"
    assert [r.requests for r in (other, moved, same)] == [1, 1, 1]


def test_a_body_without_its_length_is_refused_as_soon_as_it_passes_the_limit() -> None:
    """No ``Content-Length`` (S3 always sends one; a proxy may not): the body is read in
    pieces and refused once past the limit, not read to its end; within it, it is whole, and
    the connection left with a body unread is not used again."""
    pieces = 8

    class Chunked(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(pieces):
                self.wfile.write(b"%x\r\n%s\r\n" % (100_000, b"x" * 100_000))
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Chunked)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/chunks/k"
        get = ChunkGet(url=url, where="s3://b/k", limit=250_000, timeout=5.0)
        over = fetch(get)
        assert isinstance(over, Failed) and over.too_large is not None
        assert 250_000 < over.too_large < pieces * 100_000, "refused before the end"
        whole = fetch(replace(get, limit=pieces * 100_000))
        assert not isinstance(whole, Failed) and whole.data == b"x" * pieces * 100_000
        error = failure(over, get)
        assert isinstance(error, FrameError) and error.reason == "too_large"
    finally:
        server.shutdown()
        server.server_close()

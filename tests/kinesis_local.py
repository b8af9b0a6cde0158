"""kinesis-local (npm): an independent Kinesis implementation for conformance tests.

Installed by the Makefile (``npm ci`` from package-lock.json) into
node_modules/. It listens on 127.0.0.1 ports chosen here, never throttles, and
slows down as records accumulate, so tests keep its streams small.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from types import TracebackType

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from infrastructure.emulator import free_port
from tests.conftest import poll

PACKAGE = Path(__file__).resolve().parents[1] / "node_modules" / "kinesis-local"


def available() -> str | None:
    """Why kinesis-local cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (PACKAGE / "main.js").is_file():
        return f"kinesis-local is not installed in {PACKAGE.parent} (run `make test`)"
    return None


class KinesisLocal:
    def __init__(self, *, start_timeout: float = 30.0) -> None:
        self.port = free_port()
        self._tls_port = free_port()
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> object:
        return boto3.client(
            "kinesis",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def __enter__(self) -> KinesisLocal:
        env = {
            **os.environ,
            "KINESIS_MOCK_PLAIN_PORT": str(self.port),
            "KINESIS_MOCK_TLS_PORT": str(self._tls_port),
            "LOG_LEVEL": "WARN",
            "CREATE_STREAM_DURATION": "0ms",
            "SPLIT_SHARD_DURATION": "0ms",
            "MERGE_SHARDS_DURATION": "0ms",
        }
        self._process = subprocess.Popen(
            ["node", "main.js"],
            cwd=PACKAGE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client()
        for _ in poll("kinesis-local answering", self._start_timeout, interval=0.1):
            if self._process.poll() is not None:
                raise RuntimeError(f"kinesis-local exited with {self._process.returncode}")
            with contextlib.suppress(BotoCoreError, ClientError):
                client.list_streams()  # type: ignore[attr-defined]
                return self
        raise AssertionError("unreachable: poll() fails at its deadline")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

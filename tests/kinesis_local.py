"""kinesis-local (npm): an independent Kinesis implementation for conformance tests.

Installed by the Makefile (``npm ci`` from package-lock.json) into
node_modules/. It listens on 127.0.0.1 ports chosen here, never throttles, and
slows down as records accumulate, so tests keep its streams small.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from infrastructure.emulator import Emulator, free_port

PACKAGE = Path(__file__).resolve().parents[1] / "node_modules" / "kinesis-local"


def available() -> str | None:
    """Why kinesis-local cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (PACKAGE / "main.js").is_file():
        return f"kinesis-local is not installed in {PACKAGE.parent} (run `make test`)"
    return None


class KinesisLocal(Emulator):
    """kinesis-local on a free loopback port (its TLS listener on another one)."""

    name = "kinesis-local"
    cwd = str(PACKAGE)  # it reads server.json from its working directory

    def __init__(self) -> None:
        super().__init__()
        self._tls_port = free_port()

    def command(self) -> list[str]:
        return ["node", "main.js"]

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "KINESIS_MOCK_PLAIN_PORT": str(self.port),
            "KINESIS_MOCK_TLS_PORT": str(self._tls_port),
            "LOG_LEVEL": "WARN",
            "CREATE_STREAM_DURATION": "0ms",
            "SPLIT_SHARD_DURATION": "0ms",
            "MERGE_SHARDS_DURATION": "0ms",
        }

    def _answers(self) -> bool:
        client = boto3.client(
            "kinesis",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        try:
            client.list_streams()
        except (BotoCoreError, ClientError):
            return False
        return True

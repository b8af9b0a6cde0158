"""The ``proctor`` command as a user runs it: separate processes, real signals, real data.

``proctor up`` runs in its own session (as in a terminal, where Ctrl-C reaches
the whole foreground process group); other commands use it through the
environment it prints, exactly as its output tells a user to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import click
import psutil
import pytest
from aiobotocore.session import get_session
from botocore.config import Config

from cli.base import run
from infrastructure.emulator import free_port
from proctoring.aws import sync_client
from proctoring.settings import Settings
from proctoring.storage import from_item, to_item
from tests.conftest import DATA, eventually, require_data

REPO = Path(__file__).resolve().parents[1]
START_WITHIN = 60.0
STOP_WITHIN = 30.0


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any PROCTOR_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCTOR_")}
    env.update(extra)
    return env


def _proctor(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc), to clean up after a hung process."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.extend(int(p) for p in (task / "children").read_text().split())
    return found


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class _Up:
    """A running ``proctor up``: its process, its stdout line by line, the env it printed."""

    process: subprocess.Popen[str]
    log: Path
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    exports: dict[str, str] = field(default_factory=dict)

    def read_exports(self, within: float = START_WITHIN) -> dict[str, str]:
        """Read stdout until the three ``export`` lines, failing at the deadline."""
        deadline = time.monotonic() + within
        wanted = {"PROCTOR_ENDPOINT_URL", "PROCTOR_PREFIX", "PROCTOR_ALERTS_TOPIC_ARN"}
        while not wanted <= self.exports.keys():
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(
                    f"`proctor up` printed no environment within {within} s:\n{self.tail()}"
                )
            if line is None:
                pytest.fail(
                    f"`proctor up` exited ({self.process.wait()}) before it was up:\n{self.tail()}"
                )
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                self.exports[name] = value
        return self.exports

    def stop(self, sig: signal.Signals, *, group: bool, within: float = STOP_WITHIN) -> int:
        """Send ``sig`` to ``up`` (or to its process group, like a terminal's Ctrl-C)."""
        if group:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"`proctor up` did not stop within {within} s of {sig.name}:\n{self.tail()}"
            )

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def env(self) -> dict[str, str]:
        return _clean_env(
            PROCTOR_ENDPOINT_URL=self.exports["PROCTOR_ENDPOINT_URL"],
            PROCTOR_PREFIX=self.exports["PROCTOR_PREFIX"],
            PROCTOR_LOG_FORMAT="json",
        )

    def settings(self) -> Settings:
        return Settings(
            endpoint_url=self.exports["PROCTOR_ENDPOINT_URL"],
            prefix=self.exports["PROCTOR_PREFIX"],
        )


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextlib.contextmanager
def _proctor_up(tmp_path: Path, prefix: str) -> Iterator[_Up]:
    log = tmp_path / "up.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "up", "--prefix", prefix],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=_clean_env(PROCTOR_LOG_FORMAT="json"),
            cwd=REPO,
            start_new_session=True,  # its own process group, as a job in a terminal
        )
    up = _Up(process, log)
    assert process.stdout is not None
    reader = threading.Thread(target=_pump, args=(process.stdout, up.lines), daemon=True)
    reader.start()
    try:
        yield up
    finally:
        if process.poll() is None:  # the test failed before stopping it: do not leak it
            children = _children(process.pid)
            process.terminate()
            try:
                process.wait(timeout=STOP_WITHIN)
            except subprocess.TimeoutExpired:
                for child in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
                process.kill()
                process.wait()
        reader.join(timeout=5)
        process.stdout.close()


def _shard_count(settings: Settings) -> int:
    kinesis = sync_client(settings, "kinesis")
    return len(kinesis.list_shards(StreamName=settings.names.stream)["Shards"])


def _results(settings: Settings, session_id: str) -> list[dict[str, Any]]:
    dynamodb = sync_client(settings, "dynamodb")
    response = dynamodb.query(
        TableName=settings.names.results_table,
        KeyConditionExpression="session_id = :s",
        ExpressionAttributeValues=to_item({":s": session_id}),
        ConsistentRead=True,
    )
    return sorted((from_item(i) for i in response["Items"]), key=lambda r: r["sequence"])


def _assert_stopped_cleanly(up: _Up, code: int) -> None:
    assert code == 0, up.tail()
    log = up.tail()
    assert "Traceback" not in log, log
    assert "KeyboardInterrupt" not in log, log
    assert "Aborted" not in log, log
    assert "local stack stopped" in log
    endpoint = urlsplit(up.exports["PROCTOR_ENDPOINT_URL"])
    assert endpoint.hostname is not None and endpoint.port is not None
    assert not _answers(endpoint.hostname, endpoint.port), "the emulator must stop with `up`"


@pytest.mark.slow
def test_up_serves_register_and_replay_then_stops_on_ctrl_c(tmp_path: Path) -> None:
    require_data()
    prefix = f"cli{uuid.uuid4().hex[:8]}"
    scenario = tmp_path / "present.yaml"
    scenario.write_text(f"segments:\n  - photo: {DATA / 'faces/obama2.jpg'}\n    seconds: 10\n")

    with _proctor_up(tmp_path, prefix) as up:
        exports = up.read_exports()
        assert exports["PROCTOR_PREFIX"] == prefix
        settings = up.settings()
        assert _shard_count(settings) == 2, "the stack is provisioned on the printed endpoint"

        env = up.env()
        two = subprocess.Popen(
            [sys.executable, "-m", "cli", "register", "--exam", "e1", "--student", "s1",
             "--photo", str(DATA / "faces/two_people.jpg")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        )  # fmt: skip
        one = _proctor(
            "register", "--exam", "e1", "--student", "s1",
            "--photo", str(DATA / "faces/obama.jpg"), env=env,
        )  # fmt: skip
        _, two_err = two.communicate(timeout=120)
        assert two.returncode != 0
        assert "2 faces" in two_err, two_err
        assert "Traceback" not in two_err, two_err
        assert one.returncode == 0, one.stderr
        assert "registered s1 for e1" in one.stdout

        replayed = _proctor(
            "replay", str(scenario), "--exam", "e1", "--student", "s1",
            "--speed", "0", "--no-register", env=env,
        )  # fmt: skip
        assert replayed.returncode == 0, replayed.stderr
        assert "uploaded 2 chunks" in replayed.stdout

        rows = asyncio.run(
            eventually(
                lambda: asyncio.to_thread(_results, settings, "e1#s1"),
                lambda rows: len(rows) >= 2 and all(r["status"] == "ok" for r in rows),
                within=60,
            )
        )
        assert [r["sequence"] for r in rows] == [0, 1]
        assert [r["faces"] for r in rows] == [1, 1]
        assert {r["identity"] for r in rows} == {"match"}, "obama2.jpg is the registered student"

        # a load test of the same stack: two students at once, report and plot
        report, plot = tmp_path / "load.json", tmp_path / "load.png"
        loaded = _proctor(
            "replay", str(scenario), "--exam", "load", "--students", "2", "--speed", "0",
            "--report", str(report), "--plot", str(plot), env=env,
        )  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr
        assert "4 of 4 chunks have results (0 missing)" in loaded.stdout
        figures = json.loads(report.read_text())
        assert figures["latency_ms"]["created_to_result"]["count"] == 4
        assert plot.read_bytes().startswith(b"\x89PNG")

        # A terminal's Ctrl-C sends SIGINT to every process of the foreground job: `up`
        # and the process pool that analysed the chunks (and the emulator, were it in it).
        _assert_stopped_cleanly(up, up.stop(signal.SIGINT, group=True))


@pytest.mark.slow
def test_up_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with _proctor_up(tmp_path, f"cli{uuid.uuid4().hex[:8]}") as up:
        up.read_exports()
        assert _shard_count(up.settings()) == 2
        # What a service manager or `docker stop` sends: to the main process only.
        _assert_stopped_cleanly(up, up.stop(signal.SIGTERM, group=False))


@pytest.mark.slow
def test_up_runs_the_router_beside_the_consumer_and_stops_when_it_dies(tmp_path: Path) -> None:
    """The chunk router is a process of its own (as its Lambda is in AWS), not on the
    consumer's event loop; a stack whose router died stops, saying so, instead of taking
    chunks it never analyses."""
    with _proctor_up(tmp_path, f"cli{uuid.uuid4().hex[:8]}") as up:
        up.read_exports()
        routers = [p for p in psutil.Process(up.process.pid).children() if "route" in p.cmdline()]
        assert len(routers) == 1, [p.cmdline() for p in psutil.Process(up.process.pid).children()]
        routers[0].kill()
        try:
            code = up.process.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`proctor up` went on without its router:\n{up.tail()}")
    assert code != 0
    log = up.tail()
    assert "the chunk router exited (-9): stack stopped" in log, log
    assert "Traceback" not in log, log
    endpoint = urlsplit(up.exports["PROCTOR_ENDPOINT_URL"])
    assert endpoint.hostname is not None and endpoint.port is not None
    assert not _answers(endpoint.hostname, endpoint.port), "the emulator stops with `up`"


def _without_aws(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No endpoint, no credentials anywhere boto looks (env, files, instance metadata)."""
    env = {k: v for k, v in _clean_env(**extra).items() if not k.startswith("AWS_")}
    env.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        HOME=str(tmp_path),
    )
    return env


@pytest.mark.parametrize("command", ["replay", "consume"])
def test_without_endpoint_or_credentials_the_error_says_what_to_set(
    tmp_path: Path, command: str
) -> None:
    scenario = tmp_path / "away.yaml"
    scenario.write_text("segments:\n  - empty: 5\n")
    args = {
        "replay": ["replay", str(scenario), "--exam", "e1", "--student", "s1", "--speed", "0",
                   "--no-register"],
        "consume": ["consume"],
    }[command]  # fmt: skip
    topic = "arn:aws:sns:us-east-1:123456789012:proctor-alerts"
    completed = _proctor(*args, env=_without_aws(tmp_path, PROCTOR_ALERTS_TOPIC_ARN=topic))
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr, completed.stderr
    error = [line for line in completed.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, completed.stderr
    assert "credentials" in error[0]
    assert "PROCTOR_ENDPOINT_URL" in error[0]
    assert "uploaded" not in completed.stdout


def test_an_endpoint_that_does_not_answer_is_named_in_a_one_line_error() -> None:
    """What ``proctor replay`` says once botocore gives up connecting (after ~15 s of retries)."""
    endpoint = f"http://127.0.0.1:{free_port()}"

    async def list_streams() -> None:
        async with get_session().create_client(
            "kinesis",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"total_max_attempts": 1}),
        ) as kinesis:
            await kinesis.list_streams()

    with pytest.raises(click.ClickException) as caught:
        run(list_streams())
    message = caught.value.format_message()
    assert endpoint in message
    assert "proctor up" in message
    assert "PROCTOR_ENDPOINT_URL" in message

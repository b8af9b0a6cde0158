"""The AWS emulator of the local stack: moto's server in a child process on loopback.

It runs ``infrastructure.moto_server``: moto's server with its Kinesis operations
serialised, so concurrent PutRecords lose no record.

One moto process answers on one core at most (its threads share one interpreter). Services
whose emulation crosses no other service (:data:`SPLITTABLE`: DynamoDB, Kinesis) can run in
processes of their own (:func:`emulators`, ``proctor up --split dynamodb,kinesis``), each
client reaching its service's process (``Settings.endpoint_urls``); S3, SQS and SNS stay in
one process, since S3's notifications go to SQS and SNS delivers to SQS inside moto.

A separate process (not a thread) because it serves about twice as many
requests per second that way and a crash in it cannot take the caller down.
The caller owns it: ``with Emulator(...) as emulator:`` starts it, waits until
it answers and stops it on exit, including on Ctrl-C. It runs in its own
process group, so a terminal's Ctrl-C reaches only the caller, which stops its
services while the emulator still answers and then stops the emulator. A caller
that dies without stopping it (SIGKILL, the OOM killer) takes it along
(``proctoring.lifetime.tied``).

Errors::

    ProctoringError
     └── StackError       the emulator did not start or a resource failed
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from types import TracebackType

from proctoring.errors import ProctoringError
from proctoring.lifetime import tied

__all__ = ["SPLITTABLE", "Emulator", "StackError", "emulators", "free_port", "split_groups"]

SPLITTABLE = frozenset({"dynamodb", "kinesis"})
"""Services (botocore's names) an emulator process of their own can serve; see above."""


class StackError(ProctoringError):
    """The local stack could not be started or provisioned."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class Emulator:
    """moto's server on ``host:port`` (a free port when ``port`` is 0).

    Subclasses run other emulators the same way by overriding ``name``,
    ``command``, ``environment``, ``cwd`` and ``_answers``.
    """

    name = "moto's server"
    cwd: str | None = None

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 30.0):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise StackError(f"the emulator listens on loopback only, not {host!r}")
        self.host = host
        self.port = port or free_port(host)
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        # moto's server, its Kinesis writes serialised (infrastructure.moto_server)
        return [
            sys.executable,
            "-m",
            "infrastructure.moto_server",
            "-H",
            self.host,
            "-p",
            str(self.port),
        ]

    def environment(self) -> dict[str, str] | None:
        return None  # inherit ours

    def start(self) -> Emulator:
        self._process = subprocess.Popen(  # noqa: S603 - a fixed command line of ours
            tied(self.command()),  # ends with us, even when we are killed
            cwd=self.cwd,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            process_group=0,  # not in the terminal's foreground job: see the module docstring
        )
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise StackError(
                    f"{self.name} exited with {self._process.returncode} on port {self.port}"
                    " (is the port in use? is it installed: `make test` installs it?)"
                )
            if self._answers():
                return self
            time.sleep(0.05)  # polling for readiness, bounded by the deadline
        self.stop()
        raise StackError(
            f"{self.name} did not answer on {self.endpoint_url} within {self._start_timeout:.0f} s"
        )

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def _answers(self) -> bool:
        url = f"{self.endpoint_url}/moto-api/data.json"  # loopback http, built above
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(url, timeout=1),  # noqa: S310
        ):
            return True
        return False

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def split_groups(specs: Sequence[str]) -> list[tuple[str, ...]]:
    """``["dynamodb,kinesis"]`` -> ``[("dynamodb", "kinesis")]``: one emulator per spec.

    Raises StackError for a service that cannot leave the main emulator or is named twice.
    """
    groups: list[tuple[str, ...]] = []
    seen: set[str] = set()
    for spec in specs:
        group = tuple(name.strip().lower() for name in spec.split(",") if name.strip())
        for name in group:
            if name not in SPLITTABLE:
                raise StackError(
                    f"{name!r} cannot run in an emulator of its own (only "
                    f"{', '.join(sorted(SPLITTABLE))}: S3, SQS and SNS deliver to each other "
                    "inside one emulator)"
                )
            if name in seen:
                raise StackError(f"{name!r} is named in two --split groups")
            seen.add(name)
        if group:
            groups.append(group)
    return groups


@contextlib.contextmanager
def emulators(
    host: str = "127.0.0.1", port: int = 0, split: Sequence[tuple[str, ...]] = ()
) -> Iterator[tuple[Emulator, dict[str, str]]]:
    """The main emulator on ``host:port`` and one more per group of ``split``; yields the main
    one and the services' endpoints (``Settings.endpoint_urls``). All stop on exit."""
    with contextlib.ExitStack() as running:
        main = running.enter_context(Emulator(host, port))
        endpoints: dict[str, str] = {}
        for group in split:
            extra = running.enter_context(Emulator(host))
            endpoints.update(dict.fromkeys(group, extra.endpoint_url))
        yield main, endpoints

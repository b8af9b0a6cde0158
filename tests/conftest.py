"""Shared fixtures: the emulator (moto's server over HTTP), a stack per test, real data.

One emulator process serves the whole session; every test provisions the
CloudFormation template under its own prefix, so tests never share state and
need no reset. The process pool for frame extraction and face analysis is
shared too (spawning it and loading dlib's models takes seconds).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import structlog

from consumer.wiring import cpu_pool
from infrastructure.emulator import Emulator
from infrastructure.local import provision
from proctoring.pool import RenewingPool
from proctoring.settings import Settings

# resolved: the scenario loader resolves its paths, and ../shared may be a link
DATA = (Path(__file__).resolve().parents[1].parent / "shared" / "data").resolve()
_NO_DATA = f"real test data not found at {DATA} (the ../shared/data folder)"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=_NO_DATA)
"""Mark a test module or test that reads ../shared/data (CI always has it)."""
T = TypeVar("T")


def require_data() -> Path:
    if not DATA.is_dir():
        pytest.skip(_NO_DATA)
    return DATA


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent with -p no:xdist
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (setup.cfg): one worker per CPU this process may run on.

    xdist counts physical cores, and a CI machine's two vCPUs are often one core's two
    threads: one worker. The suite mostly waits (on the emulator, a browser, a replay paced
    in real time), so each logical CPU is worth a worker. ``PYTEST_XDIST_AUTO_NUM_WORKERS``
    still decides when it is set.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist reads it
    return len(os.sched_getaffinity(0))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-screenshots",
        action="store_true",
        help="write the browser tests' pictures into docs/screenshots (the README's) where they"
        " changed visibly; without it they go to the run's temporary folder",
    )


@pytest.fixture(autouse=True)
def _logging_config_restored() -> Iterator[None]:
    """Each test leaves structlog as it found it (a benchmark or a CLI run in-process
    configures logging for itself, possibly onto a stream it closes afterwards)."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return require_data()


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator() as running:
        yield running


def provisioned(emulator: Emulator, prefix: str | None = None, **fields: Any) -> Settings:
    """A stack provisioned from the template under ``prefix`` (a new one by default), with
    the tests' settings (fast polling, real data); ``shard_count`` goes to ``provision``."""
    shards = {"shard_count": fields.pop("shard_count")} if "shard_count" in fields else {}
    base = Settings(
        endpoint_url=emulator.endpoint_url,
        prefix=prefix or f"t{uuid.uuid4().hex[:10]}",
        data_dir=DATA,
        poll_interval=0.05,
        retry_backoff=0.05,
        cpu_workers=2,
        log_format="console",
        **fields,
    )
    outputs = provision(base, **shards)
    return base.model_copy(update={"alerts_topic_arn": outputs["AlertsTopicArn"]})


@pytest.fixture
def settings(emulator: Emulator) -> Settings:
    """A freshly provisioned stack with its own prefix."""
    return provisioned(emulator)


@pytest.fixture(scope="session")
def present_chunk(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """One real 5 s camera chunk: the registered student (obama2.jpg), alone, facing the camera."""
    require_data()
    from producer.rendering import render_chunks
    from producer.scenario import load_scenario

    scenario = tmp_path_factory.mktemp("present") / "present.yaml"
    scenario.write_text("segments:\n  - photo: faces/obama2.jpg\n    seconds: 5\n")
    (only,) = render_chunks(load_scenario(scenario, data_dir=DATA))
    return only.data


@pytest.fixture(scope="session")
def pool() -> Iterator[RenewingPool]:
    with cpu_pool(Settings(cpu_workers=2)) as executor:
        yield executor


def poll(what: str, within: float, *, interval: float = 0.25) -> Iterator[float]:
    """Yield the seconds elapsed, every ``interval``, until the caller breaks; fail at ``within``.

    For synchronous waits on other processes: a bounded poll, never a fixed sleep.
    """
    start = time.monotonic()
    tick = threading.Event()  # never set: wait() is the pause between two looks
    while (elapsed := time.monotonic() - start) < within:
        yield elapsed
        tick.wait(interval)
    pytest.fail(f"{what}: not within {within:.0f} s")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    within: float = 60.0,
    interval: float = 0.1,
) -> T:
    """Poll ``probe`` until ``done`` holds for its value, or fail at the deadline."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s; last value: {value!r}")
        await asyncio.sleep(interval)


@pytest.fixture
def built_clients(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The AWS service of every aiobotocore client built from here on, in order: what a
    warm Lambda must not build twice."""
    from aiobotocore.session import AioSession

    built: list[str] = []
    create_client = AioSession.create_client

    def counted(self: AioSession, service: str, *args: Any, **kwargs: Any) -> Any:
        built.append(service)
        return create_client(self, service, *args, **kwargs)

    monkeypatch.setattr(AioSession, "create_client", counted)
    return built

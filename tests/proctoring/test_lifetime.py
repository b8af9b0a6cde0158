"""Child processes end with the process that started them (``proctoring.lifetime``).

First the mechanism on small real processes (the kernel's parent-death signal,
the portable watchdog, the exec wrapper and its supervising fallback); then
what an operator does: ``proctor consume``, ``proctor consume --kcl`` and
``proctor up`` started for real, their pool warm, killed with SIGKILL (every
child they had is gone within seconds) or stopped with SIGTERM (a clean exit:
batches checkpointed, leases released, no child left).

Children are listed with psutil *before* the kill (afterwards they are
orphans of PID 1) and polled until gone; a zombie counts as gone (dead,
waiting only for whoever reaps orphans here).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest

from consumer.leases import TRIM_HORIZON
from proctoring.aws import async_clients, sync_client
from proctoring.lifetime import bind_to_parent, tied
from proctoring.settings import Settings
from proctoring.storage import Tables, from_item
from producer.rendering import render_chunks
from producer.scenario import load_scenario
from tests import kinesis_local
from tests.conftest import DATA, needs_data, poll
from tests.pipeline import put_chunk

REPO = Path(__file__).resolve().parents[2]
GONE_WITHIN = 5.0  # "within a few seconds" of the kill
START_WITHIN = 90.0  # a cold interpreter, dlib's models, on 2 shared cores


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone_after(processes: list[psutil.Process], within: float = GONE_WITHIN) -> float:
    """Seconds until every one of ``processes`` has ended; fails at ``within``."""
    start = time.monotonic()
    pause = threading.Event()  # never set: wait() is the pause between two looks
    while (elapsed := time.monotonic() - start) < within:
        if not any(_alive(p) for p in processes):
            return elapsed
        pause.wait(0.05)
    alive = [f"{p.pid} {' '.join(p.cmdline()[:4])}" for p in processes if _alive(p)]
    pytest.fail(f"still running {within:.0f} s after their parent ended: {alive}")


def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def _pool_processes(pid: int) -> list[psutil.Process]:
    return [p for p in _descendants(pid) if "spawn_main" in " ".join(p.cmdline())]


def _kill(process: subprocess.Popen[Any], sig: signal.Signals = signal.SIGKILL) -> int:
    process.send_signal(sig)
    return process.wait(timeout=60)


@pytest.fixture
def reaped() -> Iterator[list[psutil.Process]]:
    """Processes a test started, killed at the end if a failed test left them running."""
    started: list[psutil.Process] = []
    yield started
    for process in started:
        if _alive(process):
            process.kill()


# ---- the mechanism ------------------------------------------------------------------------


@pytest.fixture
def intermediate() -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    """Starts a Python process running ``code``, which prints one line once its children run."""
    started: list[subprocess.Popen[str]] = []

    def start(code: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        with process:  # closes its stdout and reaps it
            process.kill()


def _ready(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()  # the intermediate prints it or exits (EOF)
    assert line, f"the intermediate process exited with {process.wait()}"
    return line.strip()


@pytest.mark.parametrize("mechanism", ["prctl", "watchdog"])
def test_a_bound_pool_process_ends_when_its_parent_is_killed(
    mechanism: str,
    reaped: list[psutil.Process],
    intermediate: Callable[[str], subprocess.Popen[str]],
) -> None:
    if mechanism == "prctl" and not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux's")
    parent = intermediate(
        "import multiprocessing, os, threading\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from functools import partial\n"
        "from proctoring.lifetime import bind_to_parent\n"
        "pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'),\n"
        f"    initializer=partial(bind_to_parent, mechanism={mechanism!r}, every=0.1),\n"
        "    initargs=(os.getpid(),))\n"
        "print(pool.submit(os.getpid).result(), flush=True)\n"
        "threading.Event().wait()\n"
    )
    worker = int(_ready(parent))
    children = _descendants(parent.pid)
    reaped.extend(children)
    assert worker in {c.pid for c in children}
    assert _kill(parent) == -signal.SIGKILL
    print(f"{mechanism}: pool process and resource tracker gone {_gone_after(children):.2f} s")


@pytest.mark.parametrize("supervise", [False, True], ids=["exec", "supervise"])
def test_a_tied_command_ends_when_its_parent_is_killed(
    supervise: bool,
    reaped: list[psutil.Process],
    intermediate: Callable[[str], subprocess.Popen[str]],
) -> None:
    parent = intermediate(
        "import subprocess, threading\n"
        "from proctoring.lifetime import tied\n"
        "command = tied(['sleep', '120'])\n"
        f"if {supervise}: command.insert(command.index('--'), '--supervise')\n"
        "child = subprocess.Popen(command)\n"
        "print(child.pid, flush=True)\n"
        "threading.Event().wait()\n"
    )
    child = int(_ready(parent))
    for _ in poll("the command started", 10, interval=0.05):
        names = {c.pid: c.name() for c in _descendants(parent.pid)}
        if "sleep" in names.values():
            break
    children = _descendants(parent.pid)
    reaped.extend(children)
    if supervise:  # the wrapper stays as the command's parent
        assert names[child] != "sleep" and len(names) == 2, names
    else:  # the wrapper became the command: the pid Popen returned is sleep's own
        assert names == {child: "sleep"}
    assert _kill(parent) == -signal.SIGKILL
    print(f"{'supervise' if supervise else 'exec'}: gone {_gone_after(children):.2f} s")


def test_a_child_whose_parent_died_before_it_was_bound_ends_at_once() -> None:
    """The race between fork and prctl: the expected parent is no longer ours."""
    not_our_parent = 1
    bound = subprocess.run(
        [sys.executable, "-c",
         f"from proctoring.lifetime import bind_to_parent; bind_to_parent({not_our_parent});"
         "import time; time.sleep(60)"],
        cwd=REPO, timeout=30, check=False,
    )  # fmt: skip
    assert bound.returncode == -signal.SIGKILL
    wrapped = subprocess.run(
        tied(["sleep", "60"], parent_pid=not_our_parent), cwd=REPO, timeout=30, check=False
    )
    assert wrapped.returncode == 1, "the command is never started"


def test_stopping_a_supervising_wrapper_stops_its_command(reaped: list[psutil.Process]) -> None:
    command = tied(["sleep", "120"])
    command.insert(command.index("--"), "--supervise")
    wrapper = subprocess.Popen(command, cwd=REPO)
    for _ in poll("the command started", 10, interval=0.05):
        children = _descendants(wrapper.pid)
        if children:
            break
    reaped.extend(children)
    assert _kill(wrapper, signal.SIGTERM) == 128 + signal.SIGTERM
    _gone_after(children)


def test_sigterm_ends_a_pool_process_even_when_its_parent_ignores_sigterm() -> None:
    """An ignored signal stays ignored across fork and exec: a consumer started with SIGTERM
    ignored (a shell's ``trap '' TERM``, a supervisor) gave its pool the same deafness."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        pool = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=bind_to_parent,
            initargs=(os.getpid(),),
        )
        worker = psutil.Process(pool.submit(os.getpid).result(timeout=60))
    finally:
        signal.signal(signal.SIGTERM, previous)
    with pool:
        worker.send_signal(signal.SIGTERM)
        print(f"a pool process gone {_gone_after([worker]):.2f} s after SIGTERM")


# ---- what an operator does ----------------------------------------------------------------


def _consumer_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCTOR_")}
    return env | {
        "PROCTOR_ENDPOINT_URL": settings.endpoint_url or "",
        "PROCTOR_PREFIX": settings.prefix,
        "PROCTOR_ALERTS_TOPIC_ARN": settings.alerts_topic_arn or "",
        "PROCTOR_CPU_WORKERS": "2",
        "PROCTOR_DETECT_UPSAMPLE": "0",
        "PROCTOR_POLL_INTERVAL": "0.2",
        "PROCTOR_LOG_FORMAT": "json",
        "PROCTOR_DATA_DIR": str(DATA),
        **extra,
    }


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def _consume(settings: Settings, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", "consume"],
            env=_consumer_env(settings, **extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=REPO,
        )


def _warm(process: subprocess.Popen[Any], log: Path, workers: int = 2) -> list[psutil.Process]:
    """Wait until the consumer leases (its pool warm); its children at that moment."""
    for _ in poll("`proctor consume` started with a warm pool", START_WITHIN):
        assert process.poll() is None, log.read_text()[-3000:]
        if any(line.get("event") == "worker started" for line in _log(log)):
            break
    assert len(_pool_processes(process.pid)) == workers
    return _descendants(process.pid)


def _leases(settings: Settings) -> dict[str, dict[str, Any]]:
    items = sync_client(settings, "dynamodb").scan(
        TableName=settings.names.leases_table, ConsistentRead=True
    )["Items"]
    return {i["leaseKey"]: i for i in map(from_item, items)}


@pytest.mark.slow
def test_consume_killed_with_sigkill_leaves_no_process_behind(
    settings: Settings, tmp_path: Path, reaped: list[psutil.Process]
) -> None:
    log = tmp_path / "consume.log"
    consumer = _consume(settings, log)
    children = _warm(consumer, log)
    reaped.extend(children)
    assert _kill(consumer) == -signal.SIGKILL
    elapsed = _gone_after(children)
    print(f"proctor consume SIGKILLed: {len(children)} children gone after {elapsed:.2f} s")


@needs_data
@pytest.mark.slow
def test_consume_stopped_with_sigterm_checkpoints_releases_and_leaves_nothing(
    settings: Settings, tmp_path: Path, reaped: list[psutil.Process]
) -> None:
    log = tmp_path / "consume.log"
    consumer = _consume(settings, log, PROCTOR_BATCH_SIZE="2")
    children = _warm(consumer, log)
    reaped.extend(children)
    scenario = tmp_path / "present.yaml"
    scenario.write_text("segments:\n  - photo: faces/obama2.jpg\n    seconds: 1\n")
    (chunk,) = render_chunks(
        load_scenario(scenario, data_dir=DATA), seconds=1, fps=5, size=(320, 240)
    )

    async def replay_and_stop() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with async_clients(settings) as clients:
            put = [
                await put_chunk(
                    clients, settings, exam_id="e1", student_id="s1", sequence=i, data=chunk.data
                )
                for i in range(12)
            ]
            tables = Tables(clients.dynamodb, settings.names)
            for _ in poll("the first results", START_WITHIN, interval=0.05):
                if await tables.results("e1#s1"):
                    break
            consumer.send_signal(signal.SIGTERM)  # mid-replay, batches in flight
            code = await asyncio.to_thread(consumer.wait, 60)
            assert code == 0, log.read_text()[-3000:]
            return put, await tables.results("e1#s1")

    put, rows = asyncio.run(replay_and_stop())
    elapsed = _gone_after(children)
    (stopped,) = [line for line in _log(log) if line.get("event") == "worker stopped"]
    assert stopped["unfinished"] == 0

    leases = _leases(settings)
    assert all("leaseOwner" not in lease for lease in leases.values()), leases
    (shard,) = {p["ShardId"] for p in put}  # one student: one partition key, one shard
    checkpoint = leases[shard]["checkpoint"]
    assert checkpoint != TRIM_HORIZON
    # the checkpoint covers exactly the chunks whose results are written: nothing
    # processed is left to be processed again, nothing checkpointed is unprocessed
    processed = sorted(r["sequence"] for r in rows)
    assert processed == list(range(len(processed)))
    assert checkpoint == put[len(processed) - 1]["SequenceNumber"]
    assert all(lease["checkpoint"] == TRIM_HORIZON for key, lease in leases.items() if key != shard)
    print(
        f"proctor consume SIGTERMed after {len(processed)} of {len(put)} chunks: exit 0, "
        f"checkpointed, leases released, {len(children)} children gone after {elapsed:.2f} s"
    )


@needs_data
@pytest.mark.slow
def test_consume_kcl_killed_with_sigkill_leaves_no_process_behind(
    settings: Settings, tmp_path: Path, reaped: list[psutil.Process]
) -> None:
    pytest.importorskip("amazon_kclpy", reason="amazon_kclpy is installed by `make test`")
    from tests.consumer.test_kcl import _Daemon

    daemon = _Daemon(settings, tmp_path / "kcl.log")
    try:
        daemon.send(
            {"action": "initialize", "shardId": "shardId-000000000000",
             "sequenceNumber": "TRIM_HORIZON", "subSequenceNumber": 0}
        )  # fmt: skip
        # answered once the processor is built: its pool warm
        assert daemon.receive(within=START_WITHIN)["responseFor"] == "initialize"
        assert len(_pool_processes(daemon.process.pid)) == 1
        children = _descendants(daemon.process.pid)
        reaped.extend(children)
        assert _kill(daemon.process) == -signal.SIGKILL
        elapsed = _gone_after(children)
    finally:
        daemon.close()
    print(f"proctor consume --kcl SIGKILLed: {len(children)} children gone after {elapsed:.2f} s")


@pytest.mark.slow
def test_up_killed_with_sigkill_takes_the_emulator_and_the_pool_along(tmp_path: Path) -> None:
    from tests.test_cli import _proctor_up

    with _proctor_up(tmp_path, f"life{uuid.uuid4().hex[:8]}") as up:
        up.read_exports()
        for _ in poll("`proctor up` leasing with a warm pool", START_WITHIN):
            if "worker started" in up.tail():
                break
        children = _descendants(up.process.pid)
        commands = [" ".join(c.cmdline()) for c in children]
        assert sum("infrastructure.moto_server" in c for c in commands) == 1, commands
        assert sum("spawn_main" in c for c in commands) >= 1, commands
        assert _kill(up.process) == -signal.SIGKILL  # the process alone, not its group
        try:
            elapsed = _gone_after(children)
        finally:  # survivors hold up's stdout open: the helper's reader would wait on them
            for child in filter(_alive, children):
                child.kill()
    print(f"proctor up SIGKILLed: {len(children)} children gone after {elapsed:.2f} s")


@pytest.mark.slow
@pytest.mark.parametrize("which", ["moto", "kinesis-local"])
def test_an_emulator_ends_with_the_process_that_started_it(
    which: str,
    reaped: list[psutil.Process],
    intermediate: Callable[[str], subprocess.Popen[str]],
) -> None:
    if which == "kinesis-local" and (why := kinesis_local.available()) is not None:
        pytest.skip(why)
    start = {
        "moto": "from infrastructure.emulator import Emulator; Emulator().start()",
        "kinesis-local": "from tests.kinesis_local import KinesisLocal; KinesisLocal().start()",
    }[which]
    parent = intermediate(f"import threading\n{start}\nprint('up', flush=True)\n"
                           "threading.Event().wait()\n")  # fmt: skip
    assert _ready(parent) == "up"
    children = _descendants(parent.pid)
    reaped.extend(children)
    assert len(children) == 1, "the server itself, no wrapper or npx left in between"
    assert _kill(parent) == -signal.SIGKILL
    print(f"{which}: gone {_gone_after(children):.2f} s after its parent was SIGKILLed")

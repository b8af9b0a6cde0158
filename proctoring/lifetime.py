"""Child processes that end with the process that started them.

A process killed with SIGKILL, by the OOM killer or by a crash runs no cleanup
code: its children (the process pool, the emulator) would live on under PID 1,
holding memory and ports, and a restarted parent would start a second set
beside them. Every child process the project starts is therefore bound to its
parent in one of two ways:

- ``bind_to_parent(parent_pid)``, called first in a child that runs our own
  Python (the process pool's initializer). On Linux the kernel sends the child
  SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a
  watchdog thread notices that the parent changed and ends the process. A
  parent that died before the call is noticed at once (``os.getppid()`` is no
  longer ``parent_pid``). It also restores SIGTERM's default action, so a
  plain ``kill`` ends the child at once.
- ``tied(command)``, the command line that runs ``command`` bound the same
  way, for programs that are not ours (node, moto's server):
  ``python -m proctoring.lifetime --parent PID -- COMMAND...`` sets the
  parent-death signal and ``exec``s the command (same pid, nothing left in
  between: the signal survives exec); where there is no prctl it stays as the
  command's parent and stops it when its own parent is gone. A wrapper rather
  than ``Popen(preexec_fn=...)``: Python code between fork and exec is not
  safe in a parent with threads.

Linux caveat: the parent-death signal is sent when the *thread* that started
the child ends, not only the process. Start children from a thread that lives
as long as they should: the main thread, or the event loop's thread that owns
the pool (``consumer.wiring.cpu_pool`` starts every pool process at
once, from there).

Nothing here logs: a pool process inherits stdout, which the KCL mode reserves
for its protocol.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Literal, NoReturn

__all__ = ["Mechanism", "bind_to_parent", "tied"]

Mechanism = Literal["prctl", "watchdog"]
"""How a child learns that its parent died: the kernel's signal, or a polling thread."""

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCH_EVERY = 0.5  # seconds between two looks of the watchdog (and of the supervisor)
_ORPHANED = 1  # exit status of a child whose parent is gone (nobody reads it)


def bind_to_parent(
    parent_pid: int, *, mechanism: Mechanism | None = None, every: float = _WATCH_EVERY
) -> Mechanism:
    """End this process when ``parent_pid`` (its parent) is gone, and promptly on SIGTERM.

    ``mechanism`` None picks the parent-death signal where the kernel has it, else
    the watchdog thread; tests force the watchdog. Returns the mechanism used.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):  # a mask inherited from a thread survives exec
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    used: Mechanism = "watchdog"
    if mechanism != "watchdog" and _set_parent_death_signal():
        used = "prctl"
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        _end()
    if used == "watchdog":
        threading.Thread(
            target=_watch, args=(parent_pid, every), name="parent-watchdog", daemon=True
        ).start()
    return used


def tied(command: Sequence[str], *, parent_pid: int | None = None) -> list[str]:
    """``command`` run so that it ends when this process (or ``parent_pid``) is gone.

    Start the result from the thread that should own the child (see the module
    docstring); the pid ``Popen`` reports is the command's own.
    """
    parent = os.getpid() if parent_pid is None else parent_pid
    return [sys.executable, "-m", "proctoring.lifetime", "--parent", str(parent), "--", *command]


def _set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` when the parent dies; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return int(prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0


def _watch(parent_pid: int, every: float) -> None:
    pause = threading.Event()  # never set: wait() is the pause between two looks
    while os.getppid() == parent_pid:
        pause.wait(every)
    _end()


def _end() -> NoReturn:
    """End now, as the parent-death signal would: no cleanup, nobody is waiting for us."""
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(_ORPHANED)


def _supervise(command: Sequence[str], parent_pid: int, every: float) -> int:
    """Run ``command`` as our child until it exits or ``parent_pid`` is gone; its status.

    The fallback where ``exec`` cannot carry a parent-death signal: SIGTERM, SIGINT
    and SIGHUP sent to us are passed on, so stopping us stops the command.
    """
    child = subprocess.Popen(command)  # noqa: S603 - the caller's command line
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda received, _frame: child.send_signal(received))
    while True:
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = child.wait(timeout=every)
            return code if code >= 0 else 128 - code
        if os.getppid() != parent_pid:
            child.kill()
            child.wait()
            return _ORPHANED


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proctoring.lifetime",
        description="Run COMMAND so that it ends when process PID (our parent) is gone.",
    )
    parser.add_argument("--parent", type=int, required=True, metavar="PID")
    parser.add_argument(
        "--supervise",
        action="store_true",
        help="stay as COMMAND's parent and watch (the fallback without prctl)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no COMMAND given")
    if not args.supervise and _set_parent_death_signal():
        if os.getppid() != args.parent:
            return _ORPHANED
        try:
            os.execvp(command[0], command)  # noqa: S606 - the caller's command line
        except OSError as exc:
            print(f"proctoring.lifetime: cannot run {command[0]}: {exc}", file=sys.stderr)
            return 127
    if os.getppid() != args.parent:
        return _ORPHANED
    return _supervise(command, args.parent, _WATCH_EVERY)


if __name__ == "__main__":
    sys.exit(_main())

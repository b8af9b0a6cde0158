"""Check that an environment holds exactly what its lock files pin.

The locks (``requirements/*.txt``, written by ``make lock`` with ``uv pip
compile --generate-hashes``) pin every distribution of an environment;
``make`` installs from them with ``pip --require-hashes``. This module reads
a lock the way pip does - one ``name==version`` per requirement, its
environment marker evaluated for this interpreter - and compares it with the
distributions installed beside it, so a venv that drifted (a package
installed by hand, a stale one left by an older lock, a different version)
is named rather than tested with.

``python -m infrastructure.locks requirements/dev.txt requirements/kcl.txt``
exits 1 and lists every difference; ``make`` runs it after each install and
``tests/infrastructure/test_locks.py`` runs it in the test suite.

Errors::

    ProctoringError
     └── LockError      a lock line that pins no exact version
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

from proctoring.errors import ProctoringError

__all__ = ["Difference", "LockError", "compare", "installed", "main", "read_lock"]

# Installed with the venv itself (or the project) and not pinned by any lock: the project's
# own editable install is checked by setup.cfg, not by a lock.
_UNPINNED = frozenset({"hybrid-proctoring"})
_REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>\S+)")


class LockError(ProctoringError):
    """A lock file says something this check cannot read as an exact pin."""


@dataclass(frozen=True, slots=True)
class Difference:
    """One distribution whose installed version is not the locked one (``None``: absent)."""

    name: str
    locked: str | None
    installed: str | None

    def __str__(self) -> str:
        if self.installed is None:
            return f"{self.name}: locked {self.locked}, not installed"
        if self.locked is None:
            return f"{self.name}: {self.installed} installed, in no lock"
        return f"{self.name}: locked {self.locked}, {self.installed} installed"


def _logical_lines(text: str) -> Iterable[str]:
    """The lock's requirement lines, continuation lines joined, comments and hashes dropped."""
    joined = re.sub(r"\\\n", " ", text)
    for raw in joined.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            yield re.sub(r"\s--hash=\S+", "", line).strip()


def read_lock(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of every requirement whose marker holds here."""
    pins: dict[str, str] = {}
    for line in _logical_lines(path.read_text(encoding="utf-8")):
        spec, _, marker = line.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        match = _REQUIREMENT.match(spec.strip())
        if match is None:
            raise LockError(f"{path}: {line!r} pins no exact version")
        pins[canonicalize_name(match["name"])] = match["version"]
    return pins


def installed() -> dict[str, str]:
    """``{canonical name: version}`` of every distribution this interpreter sees."""
    return {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"]
    }


def compare(locked: Mapping[str, str], present: Mapping[str, str]) -> list[Difference]:
    """Every distribution that is locked and absent, installed and unlocked, or another version."""
    names = sorted((set(locked) | set(present)) - _UNPINNED)
    return [
        Difference(name, locked.get(name), present.get(name))
        for name in names
        if locked.get(name) != present.get(name)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("locks", nargs="+", type=Path, help="lock files of this environment")
    args = parser.parse_args(argv)
    locked: dict[str, str] = {}
    for lock in args.locks:
        locked.update(read_lock(lock))
    differences = compare(locked, installed())
    if differences:
        listed = "\n  ".join(str(d) for d in differences)
        raise SystemExit(
            f"this environment is not what {', '.join(map(str, args.locks))} pin:\n  {listed}\n"
            "rebuild it from the locks (make clean && make), or change the locks on purpose "
            "(make lock, docs/dependencies.md)"
        )
    print(f"{len(locked)} distributions, exactly as locked in {', '.join(map(str, args.locks))}")


if __name__ == "__main__":
    main()

"""The pages' Chime SDK bundle: built by `make web` from the npm lock, one self-contained module.

``make web`` is what ``make demo``, ``make up`` and ``make test`` run first; here it builds into
a temporary folder (``CHIME_BUNDLE=``) so the served copy is left alone.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_PAGES_USE = (
    "ConsoleLogger",
    "DefaultDeviceController",
    "DefaultMeetingSession",
    "LogLevel",
    "MeetingSessionConfiguration",
)


def _locked(name: str) -> dict[str, str]:
    lock = json.loads((ROOT / "package-lock.json").read_text())
    entry: dict[str, str] = lock["packages"][f"node_modules/{name}"]
    return entry


def test_the_npm_packages_of_the_bundle_are_pinned_exactly_in_the_lock() -> None:
    wanted = json.loads((ROOT / "package.json").read_text())["devDependencies"]
    for name in ("amazon-chime-sdk-js", "esbuild"):
        assert re.fullmatch(r"\d+\.\d+\.\d+", wanted[name]), f"{name} is not pinned exactly"
        assert _locked(name)["version"] == wanted[name]
        assert _locked(name)["integrity"].startswith("sha512-")
    assert "npm ci " in (ROOT / "Makefile").read_text()  # installs the lock, never resolves


def test_make_web_builds_the_locked_sdk_into_one_module_with_no_remote_import(
    tmp_path: Path,
) -> None:
    if shutil.which("npm") is None:
        pytest.fail("npm is not installed: the bundle cannot be built (docs/dependencies.md)")
    out = tmp_path / "amazon-chime-sdk.js"
    built = subprocess.run(
        ["make", "--no-print-directory", "web", f"CHIME_BUNDLE={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    code = out.read_text(encoding="utf-8")
    assert f'"{_locked("amazon-chime-sdk-js")["version"]}"' in code  # the SDK's own version
    exported = re.search(r"export\s*\{([^}]*)\}", code)
    assert exported, "an ES module"
    names = {part.split(" as ")[-1].strip() for part in exported.group(1).split(",")}
    assert names == set(_PAGES_USE)
    # nothing left to fetch: no import statement or dynamic import of another file or host
    assert not re.search(r"(^|[;\s])import[\s{*\"']|[^.\w]import\(", code), "imports left"

"""Install amazon_kclpy's Python package without the Java daemon's jars.

``pip install amazon-kclpy`` downloads the MultiLangDaemon's jars from Maven
Central while it builds, which fails where only PyPI is reachable (this
project's development machines and CI). The Python half - the MultiLang
protocol, ``kcl.KCLProcess`` and the v3 record processor base - needs no
jar, and it is all the tests need: they play the daemon over pipes. This
module takes the sdist pinned, with its hash, in ``requirements/kcl.txt``
(pip checks the hash), installs only its ``amazon_kclpy`` package and writes
the distribution's metadata beside it, so ``pip freeze`` and ``pip
uninstall`` know it like any other package and the lock check
(``infrastructure/locks.py``) sees the locked version. The consumer image's
KCL mode installs the real thing, jars included (see ``consumer/Dockerfile``).

Usage: ``python -m consumer.kclpy_install`` (the Makefile runs it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

from infrastructure.locks import read_lock

__all__ = ["LOCK", "install"]

LOCK = Path(__file__).resolve().parents[1] / "requirements" / "kcl.txt"
_NAME = "amazon-kclpy"


def _write_metadata(site: Path, version: str) -> Path:
    """A dist-info for the copied package: name, version, installer and every file (RECORD)."""
    for stale in site.glob("amazon_kclpy-*.dist-info"):
        shutil.rmtree(stale)
    info = site / f"amazon_kclpy-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {_NAME}\nVersion: {version}\n"
        "Summary: The Python package of amazon-kclpy, without the daemon's jars\n"
        "Requires-Dist: boto3\n",
        encoding="utf-8",
    )
    (info / "INSTALLER").write_text("consumer.kclpy_install\n", encoding="utf-8")
    files = sorted(p for p in (site / "amazon_kclpy").rglob("*") if p.is_file())
    record = info / "RECORD"
    written = [*files, info / "METADATA", info / "INSTALLER", record]
    listed = [p.relative_to(site).as_posix() for p in written]
    record.write_text("".join(f"{name},,\n" for name in listed), encoding="utf-8")
    return info


def install(lock: Path = LOCK) -> Path:
    """Download the locked sdist with pip (hash checked), install its package; its folder."""
    version = read_lock(lock)[_NAME]
    site = Path(sysconfig.get_paths()["purelib"])
    target = site / "amazon_kclpy"
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(  # noqa: S603 - our own interpreter's pip
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--require-hashes",
                "--no-binary",
                ":all:",
                "-d",
                folder,
                "-r",
                str(lock),
            ],
            check=True,
        )
        (archive,) = Path(folder).glob("amazon_kclpy-*.tar.gz")
        with tarfile.open(archive) as sdist:
            sdist.extractall(folder, filter="data")
        source = Path(folder) / f"amazon_kclpy-{version}" / "amazon_kclpy"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("jars"))
    _write_metadata(site, version)
    return target


if __name__ == "__main__":
    print(f"{_NAME} (Python package, no jars) installed from {LOCK.name} in {install()}")

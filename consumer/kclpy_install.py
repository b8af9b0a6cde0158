"""Install amazon_kclpy's Python package without the Java daemon's jars.

``pip install amazon-kclpy`` downloads the MultiLangDaemon's jars from Maven
Central while it builds, which fails where only PyPI is reachable (this
project's development machines and CI). The Python half - the MultiLang
protocol, ``kcl.KCLProcess`` and the v3 record processor base - needs no
jar, and it is all the tests need: they play the daemon over pipes. This
module takes the same sdist from PyPI with pip and installs only that
package. The consumer image's KCL mode installs the real thing, jars
included (see ``consumer/Dockerfile``).

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

__all__ = ["VERSION", "install"]

VERSION = "3.2.0"


def install(version: str = VERSION) -> Path:
    """Download the sdist with pip, copy its ``amazon_kclpy`` package into site-packages."""
    target = Path(sysconfig.get_paths()["purelib"]) / "amazon_kclpy"
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(  # noqa: S603 - our own interpreter's pip
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                folder,
                f"amazon-kclpy=={version}",
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
    return target


if __name__ == "__main__":
    print(f"amazon_kclpy {VERSION} (Python package, no jars) installed in {install()}")

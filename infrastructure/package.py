"""Build the Lambda code zip: the project and its dependencies, for Lambda's Python and CPU.

``python -m infrastructure.package`` (``make package``) builds the project's
wheel, installs it with its dependencies - exactly the versions and hashes
of ``requirements/lambda.txt`` - into ``build/lambda/`` as ``manylinux``
wheels for the functions' runtime (CPython 3.12, x86_64 - the template's
``Runtime`` and ``Architectures``, and the lock's target), leaves out what only the
consumer and the CLI use (PyAV with its FFmpeg, rich - together ~120 MiB,
which would break Lambda's 250 MiB limit), and zips that folder
reproducibly: same inputs, same bytes. The zip is named after its content
hash (``lambda-<sha256>.zip``), which is the template's ``CodeKey``: a new
build is a new key, so CloudFormation updates the functions.

Errors::

    ProctoringError
     └── PackageError      pip failed, or the zip is larger than Lambda accepts
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from proctoring.errors import ProctoringError

__all__ = ["EXCLUDED", "GLIBC", "LOCK", "PLATFORMS", "PackageError", "build", "zip_folder"]

_ROOT = Path(__file__).resolve().parents[1]
LOCK = _ROOT / "requirements" / "lambda.txt"  # `make lock` resolves it for this runtime
PYTHON_VERSION = "3.12"  # the template's Runtime: python3.12
# The template's Architectures: [x86_64]; Lambda's python3.12 runs on Amazon Linux 2023 (glibc
# 2.34). `make lock` resolves requirements/lambda.txt for x86_64-manylinux_2_28, which takes
# every older manylinux tag too; pip needs each tag named.
GLIBC = (2, 28)
PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(GLIBC[1], 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
MAX_UNZIPPED = 250 * 1024 * 1024  # Lambda's limit for code from S3
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest date: no build time in the archive
_SKIP_DIRS = {"__pycache__", "tests"}
# Imported by the consumer (frames) and the CLI (live board) only; no handler imports
# them (tests/infrastructure/test_package.py checks it). structlog uses rich if present.
EXCLUDED = ("av", "rich", "pygments", "markdown_it", "mdurl")


class PackageError(ProctoringError):
    """The Lambda package could not be built."""


def zip_folder(folder: Path, out_dir: Path) -> Path:
    """Zip ``folder``'s content reproducibly into ``out_dir/lambda-<hash>.zip``."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not _SKIP_DIRS & set(p.relative_to(folder).parts)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out_dir, suffix=".zip", delete=False) as tmp:
        staging = Path(tmp.name)
    try:
        with zipfile.ZipFile(staging, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for path in files:
                info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=_EPOCH)
                mode = 0o755 if os.access(path, os.X_OK) else 0o644
                info.external_attr = (0o100000 | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
        digest = hashlib.sha256(staging.read_bytes()).hexdigest()[:16]
        target = out_dir / f"lambda-{digest}.zip"
        staging.replace(target)
    finally:
        staging.unlink(missing_ok=True)
    return target


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    completed = subprocess.run(command, check=False)  # noqa: S603 - our interpreter, fixed args
    if completed.returncode:
        raise PackageError(f"pip {args[0]} failed with exit code {completed.returncode}")


def build(out_dir: Path = _ROOT / "build") -> Path:
    """Build the project's Lambda zip in ``out_dir``; its path."""
    wheels = out_dir / "wheels"
    site = out_dir / "lambda"
    for folder in (wheels, site):
        shutil.rmtree(folder, ignore_errors=True)
    _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(_ROOT))
    [wheel] = wheels.glob("*.whl")
    target = [
        "--target",
        str(site),
        *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        "--no-deps",
    ]
    _pip("install", "--quiet", *target, "--require-hashes", "-r", str(LOCK))
    _pip("install", "--quiet", *target, str(wheel))  # the project: its dependencies are in
    for name in EXCLUDED:
        for path in [
            *site.glob(name),
            *site.glob(f"{name}.libs"),
            *site.glob(f"{name}-*.dist-info"),
        ]:
            shutil.rmtree(path)
    unzipped = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    if unzipped > MAX_UNZIPPED:
        raise PackageError(
            f"the package is {unzipped // 2**20} MiB unzipped; Lambda takes at most "
            f"{MAX_UNZIPPED // 2**20} MiB"
        )
    return zip_folder(site, out_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=_ROOT / "build", help="output folder")
    args = parser.parse_args(argv)
    try:
        path = build(args.out)
    except PackageError as exc:
        raise SystemExit(f"package: {exc}") from exc
    print(f"{path}  ({path.stat().st_size // 2**20} MiB)")
    print(f"CodeKey={path.name}")


if __name__ == "__main__":
    main()

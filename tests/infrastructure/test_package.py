"""The Lambda zip: reproducible, and without what no handler imports."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from infrastructure import load_template
from infrastructure.package import EXCLUDED, GLIBC, LOCK, PLATFORMS, PYTHON_VERSION, zip_folder


def _tree(root: Path) -> None:
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("x = 1\n")
    (root / "pkg" / "__pycache__" / "__init__.cpython-312.pyc").write_bytes(b"\0")
    (root / "bin").mkdir()
    (root / "bin" / "tool").write_text("#!/bin/sh\n")
    (root / "bin" / "tool").chmod(0o755)


def test_the_zip_is_named_after_its_content_and_reproducible(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    _tree(first)
    _tree(second)
    zipped = zip_folder(first, tmp_path / "out1")
    again = zip_folder(second, tmp_path / "out2")
    assert zipped.name == again.name and zipped.read_bytes() == again.read_bytes()
    assert zipped.name.startswith("lambda-") and zipped.suffix == ".zip"
    with zipfile.ZipFile(zipped) as archive:
        assert archive.namelist() == ["bin/tool", "pkg/__init__.py"]  # no bytecode
        assert (archive.getinfo("bin/tool").external_attr >> 16) & 0o777 == 0o755
    (second / "pkg" / "__init__.py").write_text("x = 2\n")
    assert zip_folder(second, tmp_path / "out3").name != zipped.name


def test_the_zip_is_built_for_the_templates_runtime() -> None:
    functions = [
        r["Properties"]
        for r in load_template()["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
    ]
    assert {f["Runtime"] for f in functions} == {f"python{PYTHON_VERSION}"}
    assert {tuple(f["Architectures"]) for f in functions} == {("x86_64",)}
    assert all(platform.endswith("_x86_64") for platform in PLATFORMS)
    # the lock the zip is installed from is resolved for that runtime by `make lock`
    makefile = (LOCK.parents[1] / "Makefile").read_text(encoding="utf-8")
    assert (
        f"--python-version {PYTHON_VERSION} --python-platform x86_64-manylinux_2_{GLIBC[1]}"
        in makefile
    )


def test_the_handlers_import_without_the_packages_left_out() -> None:
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in EXCLUDED)
    code = (
        f"import sys; {blocked}; "
        "import lambdas.chunk_router, lambdas.register, lambdas.collection_resource"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-2000:]

"""A module is one concept, a few hundred lines at most: no source module over 400 lines
without the reason written at its top (issue 17).

Read as text, nothing imported: every Python module of the project's packages and every
page module of ``dashboard/web/js`` (the bundled vendor code aside).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("proctoring", "consumer", "producer", "lambdas", "infrastructure", "dashboard", "cli",
            "bench")  # fmt: skip
LIMIT = 400
MARK = "Over 400 lines on purpose:"
TOP = 15  # lines: the reason stands in the module's first paragraph


def sources(root: Path) -> list[Path]:
    found = [p for package in PACKAGES for p in sorted((root / package).rglob("*.py"))]
    found += [p for p in sorted((root / "dashboard" / "web" / "js").glob("*.js"))]
    return found


def unexplained(root: Path) -> list[str]:
    """``path: N lines`` of each module over the limit without the reason at its top."""
    found = []
    for path in sources(root):
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > LIMIT and not any(MARK in line for line in lines[:TOP]):
            found.append(f"{path.relative_to(root).as_posix()}: {len(lines)} lines")
    return found


def test_no_module_over_400_lines_without_the_reason_at_its_top() -> None:
    long = unexplained(ROOT)
    assert not long, (
        f"over {LIMIT} lines: split by concern, or say why at the top ({MARK!r} ...): {long}"
    )


def test_the_check_finds_a_long_module_and_accepts_its_reason(tmp_path: Path) -> None:
    module = tmp_path / "consumer" / "big.py"
    module.parent.mkdir()
    module.write_text('"""One thing."""\n' + "x = 1\n" * LIMIT)
    assert unexplained(tmp_path) == ["consumer/big.py: 401 lines"]
    module.write_text(f'"""One thing.\n\n{MARK} why.\n"""\n' + "x = 1\n" * LIMIT)
    assert unexplained(tmp_path) == []

"""The proctor's terminal view: who needs attention first, why, and ids shown as typed."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from dashboard.terminal import Board, StudentRow, render


def _text(board: Board) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(render(board))
    return console.export_text()


def _alert(kind: str, sequence: int, severity: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "sequence": sequence, "severity": severity, **extra}


def _student_lines(text: str, students: list[str]) -> list[str]:
    """The students in the order their rows appear in the students table."""
    table = text.split("Live alerts")[0]
    order = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 2 and cells[1] in students:
            order.append(cells[1])
    return order


def test_students_with_high_severity_alerts_come_first() -> None:
    board = Board(exam_id="math-101")
    rows = [
        StudentRow("aaron", "honest", "aaron.jpg"),
        StudentRow("bella", "leaving", "bella.jpg", alerts=[_alert("NO_FACE", 4, "medium")]),
        StudentRow("carl", "errors", "carl.jpg", errors=1),
        StudentRow("zoe", "impostor", "zoe.jpg", alerts=[_alert("FACE_MISMATCH", 1, "high")]),
    ]
    board.students = {row.student_id: row for row in rows}

    order = _student_lines(_text(board), [row.student_id for row in rows])

    # zoe sorts last by name but has the only high-severity alert: she is on top;
    # then an ordinary alert, then bad input, then the quiet student.
    assert order == ["zoe", "bella", "carl", "aaron"]


def test_each_alert_is_shown_with_its_type_and_sequence() -> None:
    board = Board(exam_id="math-101")
    board.students["sam"] = StudentRow(
        "sam",
        "second_person",
        "obama.jpg",
        alerts=[_alert("MULTIPLE_FACES", 3, "high"), _alert("NO_FACE", 7, "medium")],
    )
    board.students["quiet"] = StudentRow("quiet", "honest", "lin.png")
    text = _text(board)

    sam_row = next(line for line in text.splitlines() if "│ sam " in line)
    assert "MULTIPLE_FACES@3" in sam_row
    assert "NO_FACE@7" in sam_row
    quiet_row = next(line for line in text.splitlines() if "│ quiet " in line)
    assert "none" in quiet_row


def test_user_provided_strings_are_shown_literally_not_as_markup() -> None:
    student = "[bold red]x[/]"
    board = Board(exam_id="[blink]exam[/blink]")
    board.students[student] = StudentRow(
        student,
        "[link=https://example.com]scenario[/link]",
        "[i]photo.jpg[/i]",
        alerts=[_alert("NO_FACE", 2, "medium")],
    )
    board.feed.append(
        _alert(
            "NO_FACE",
            2,
            "medium",
            student_id=student,
            first_sequence=1,
            created_at="2026-11-27T10:00:05+00:00",
            frame_key="frames/e/[b]x[/b]/camera/000002.jpg",
        )
    )
    text = _text(board)

    assert "Exam [blink]exam[/blink]" in text
    assert "[link=https://example.com]scenario[/link] ([i]photo.jpg[/i])" in text
    feed = text.split("Live alerts")[1]
    assert student in text.split("Live alerts")[0], "the students table shows the id as typed"
    assert student in feed, "the live feed shows the id as typed"
    assert "frames/e/[b]x[/b]/camera/000002.jpg" in feed
    assert "10:00:05" in feed

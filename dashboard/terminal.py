"""The proctor's view in a terminal: who needs attention, and why.

A pure rendering of ``Board`` (students, their latest result, their alerts,
and the live alert feed) into a rich renderable; ``proctor demo``
refreshes it a few times a second.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

__all__ = ["Board", "StudentRow", "render"]

_SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan"}


@dataclass
class StudentRow:
    student_id: str
    scenario: str
    registered_with: str
    uploaded: int = 0
    total: int | None = None
    results: int = 0
    errors: int = 0
    latest: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def attention(self) -> int:
        """Sort key: high-severity alerts first, then any alert, then errors."""
        return sum(3 if a.get("severity") == "high" else 1 for a in self.alerts) + self.errors


@dataclass
class Board:
    exam_id: str
    students: dict[str, StudentRow] = field(default_factory=dict)
    feed: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=8))
    status: str = ""


def _latest(row: StudentRow) -> Text:
    latest = row.latest
    if not latest:
        return Text("-", style="dim")
    if latest.get("status") == "error":
        return Text(f"error: {latest.get('error_reason')}", style="red")
    faces = latest.get("faces")
    identity = latest.get("identity", "")
    distance = latest.get("distance")
    text = f"#{latest.get('sequence')}: {faces} face(s), {identity}"
    if distance is not None:
        text += f" ({distance:.2f})"
    style = "green" if faces == 1 and identity == "match" else "yellow"
    return Text(text, style=style)


def render(board: Board) -> Group:
    # Ids, scenario names and keys come from users: wrap them in Text so that a "[bold]"
    # in a student id is shown as typed, never interpreted as rich markup.
    title = Text(f"Exam {board.exam_id}: students by attention", style="table.title")
    table = Table(title=title, expand=True)
    table.add_column("student")
    table.add_column("scenario")
    table.add_column("chunks", justify="right")
    table.add_column("latest frame")
    table.add_column("alerts")
    for row in sorted(board.students.values(), key=lambda r: (-r.attention, r.student_id)):
        total = f"/{row.total}" if row.total is not None else ""
        alerts = Text()
        for alert in row.alerts:
            style = _SEVERITY_STYLE.get(str(alert.get("severity")), "")
            alerts.append(f"{alert['type']}@{alert['sequence']} ", style=style)
        table.add_row(
            Text(row.student_id),
            Text(f"{row.scenario} ({row.registered_with})"),
            Text(f"{row.results}{total} done, {row.uploaded} up"),
            _latest(row),
            alerts if alerts.plain else Text("none", style="dim"),
        )
    feed = Table(title="Live alerts", expand=True, show_header=True)
    feed.add_column("time")
    feed.add_column("student")
    feed.add_column("alert")
    feed.add_column("evidence")
    for alert in board.feed:
        style = _SEVERITY_STYLE.get(str(alert.get("severity")), "")
        feed.add_row(
            Text(str(alert.get("created_at", ""))[11:19]),
            Text(str(alert.get("student_id"))),
            Text(
                f"{alert.get('type')} (chunks {alert.get('first_sequence')}-"
                f"{alert.get('sequence')})",
                style=style,
            ),
            Text(str(alert.get("frame_key", ""))),
        )
    return Group(table, feed, Text(board.status, style="dim"))

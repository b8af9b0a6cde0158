"""The rules' memory of the last chunks: streaks, and a window that lets a late chunk count.

A :class:`Streak` is where one rule stands: how many consecutive chunks its condition
held, from which chunk, and whether its incident is open. An :class:`Entry` is what one
chunk said of each rule, a few bytes kept with the student's session: the condition for
the student alone and for someone else's face on camera (which of the two applies is
decided by the FACE_MISMATCH streak as the chunks are folded in order), and the
severity. :func:`fold` applies a window of entries, in sequence order, to the streaks
before it and reports each incident that opened (:class:`Opening`: from its first chunk
to the last that held it). ``rules.evaluate`` decides what to keep and what is new.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from proctoring.rules.policy import DEFAULT_SEVERITIES, Policy, Severity

__all__ = ["Entry", "Opening", "Streak", "fold", "streaks_from_dict", "streaks_to_dict"]


@dataclass(frozen=True)
class Streak:
    count: int = 0
    first: int = -1  # sequence where the streak started
    open: bool = False  # an incident (alert) is open for this streak


_CODE = {True: "y", False: "n", None: "-"}
_DECODE = {v: k for k, v in _CODE.items()}
_SEVERITY_CODE = {"high": "h", "medium": "m", "low": "l"}
_SEVERITY_DECODE: dict[str, Severity] = {"h": "high", "m": "medium", "l": "low"}


@dataclass(frozen=True)
class Entry:
    """What one chunk said of each rule: the condition (the student alone / someone
    else's face on camera, which the streaks decide in the fold) and its severity."""

    sequence: int
    holds: dict[str, tuple[bool | None, bool | None, Severity]]

    @property
    def mismatch(self) -> bool | None:
        """FACE_MISMATCH's condition on this chunk (it does not depend on whose face)."""
        return self.holds.get("FACE_MISMATCH", (None, None, "low"))[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "s": self.sequence,
            "h": {
                rule: _CODE[alone] + _CODE[stranger] + _SEVERITY_CODE[severity]
                for rule, (alone, stranger, severity) in self.holds.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        return cls(
            sequence=int(data["s"]),
            holds={
                rule: (_DECODE[code[0]], _DECODE[code[1]], _SEVERITY_DECODE[code[2]])
                for rule, code in dict(data.get("h", {})).items()
            },
        )


@dataclass(frozen=True)
class Opening:
    """An incident that opened in a fold: from ``first``, alerted at ``at``, held to ``end``."""

    rule: str
    first: int
    at: int
    end: int
    chunks: int
    severity: Severity


def streaks_to_dict(streaks: dict[str, Streak]) -> dict[str, Any]:
    return {r: {"count": s.count, "first": s.first, "open": s.open} for r, s in streaks.items()}


def streaks_from_dict(data: dict[str, Any]) -> dict[str, Streak]:
    return {
        rule: Streak(int(s["count"]), int(s["first"]), bool(s["open"])) for rule, s in data.items()
    }


def fold(
    streaks: dict[str, Streak], window: tuple[Entry, ...], policy: Policy
) -> tuple[dict[str, Streak], list[Opening]]:
    """The streaks after the window's chunks, in order, and the incidents that opened."""
    streaks = dict(streaks)
    openings: list[Opening] = []
    running: dict[str, int] = {}  # rule -> its opening still held, in ``openings``
    for entry in window:
        # Whose face it is: a mismatch on this chunk, or one not ended by a match since.
        stranger = bool(entry.mismatch) or (
            entry.mismatch is None and streaks.get("FACE_MISMATCH", Streak()).count > 0
        )
        for rule in DEFAULT_SEVERITIES:
            if rule not in policy.enabled_rules:
                streaks.pop(rule, None)
                running.pop(rule, None)
                continue
            alone, other, severity = entry.holds.get(rule, (None, None, "low"))
            holds = other if stranger else alone
            if holds is None:
                continue
            streak = streaks.get(rule, Streak())
            if not holds:
                streaks[rule] = Streak()
                running.pop(rule, None)
                continue
            streak = Streak(
                count=streak.count + 1,
                first=entry.sequence if streak.count == 0 else streak.first,
                open=streak.open,
            )
            if streak.count >= policy.tolerance_for(rule) and not streak.open:
                streak = replace(streak, open=True)
                running[rule] = len(openings)
                openings.append(
                    Opening(
                        rule, streak.first, entry.sequence, entry.sequence, streak.count, severity
                    )
                )
            elif rule in running:
                openings[running[rule]] = replace(openings[running[rule]], end=entry.sequence)
            streaks[rule] = streak
    return streaks, openings

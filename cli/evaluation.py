"""Scoring ``proctor eval``: labelled scenarios against the alerts the pipeline raised.

A suite (``producer/scenarios/eval/suite.yaml``, read by ``cli.eval_suite``)
lists scenario files and, for each, the incidents a proctor should be alerted
to (rule, start and end in seconds). Scoring is pure: the rendered chunks'
times, the result rows and the alerts in, the figures out.

- An alert spans its chunks, from the incident's first chunk to the one it was
  raised on. It is a *true* alert when that span overlaps a labelled incident of
  its rule, otherwise a *false* one.
- Per rule: **recall** = labelled incidents with at least one true alert /
  labelled incidents; **precision** = true alerts / alerts of the rule. A rule
  with no labelled incident and no alert has neither; a rule the engine could not
  evaluate (an object rule without a detector) is *unavailable*.
- **False alerts per student-hour**: false alerts / hours of honest time (time
  outside every labelled incident).
- **Intervals** (95 %): recall and precision carry the Wilson score interval of
  their counts (detected of incidents, true of all alerts); false alerts per
  honest student-hour the exact Poisson (Garwood) interval of the count over the
  honest hours, alerts taken as independent events. A suite of a few dozen
  incidents gives wide intervals: that is the point of printing them.
- **Calls**: the Rekognition calls the schedule made or planned (per result
  row), against the naive plan of every API on every chunk (3 per chunk).
- **Gates** (:func:`failures`): the schedule exists to save calls *at equal
  recall*, so a rule whose scheduled recall is below the naive plan's fails the
  eval; so does an impostor (a labelled FACE_MISMATCH incident) not flagged on
  the first or second chunk after taking the seat (:func:`flag_delays`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cli.eval_suite import Incident
from proctoring.analysis.base import API_NAMES
from proctoring.rules import RULE_NAMES
from proctoring.stats import poisson_exact, wilson

__all__ = [
    "FLAG_WITHIN_CHUNKS",
    "RuleScore",
    "Score",
    "SessionRun",
    "failures",
    "flag_delays",
    "group_scores",
    "recall_shortfalls",
    "score",
]

FLAG_WITHIN_CHUNKS = 2
"""An impostor is flagged on the first or second chunk after taking the seat (issue 14)."""


@dataclass
class SessionRun:
    """One scenario as the pipeline saw it."""

    name: str
    incidents: tuple[Incident, ...]
    chunk_times: list[tuple[float, float]]
    """(start, end) in seconds of each uploaded chunk, by sequence."""
    results: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    groups: tuple[str, ...] = ()
    person: str | None = None
    enrolment_refused: str | None = None
    """Why enrolling the camera frames beside the photo was refused (the student would be
    sent to the proctor before the exam); None: enrolled, or nothing to enrol."""

    @property
    def seconds(self) -> float:
        return self.chunk_times[-1][1] if self.chunk_times else 0.0

    def span(self, alert: dict[str, Any]) -> tuple[float, float]:
        first = int(alert["first_sequence"])
        last = int(alert["sequence"])
        return self.chunk_times[first][0], self.chunk_times[last][1]

    def honest_seconds(self) -> float:
        covered = 0.0
        intervals = sorted((i.start, min(i.end, self.seconds)) for i in self.incidents)
        cursor = 0.0
        for start, end in intervals:
            start = max(start, cursor)
            if end > start:
                covered += end - start
                cursor = end
        return max(self.seconds - covered, 0.0)


@dataclass
class RuleScore:
    rule: str
    incidents: int = 0
    detected: int = 0
    alerts: int = 0
    true_alerts: int = 0
    available: bool = True

    @property
    def recall(self) -> float | None:
        return self.detected / self.incidents if self.incidents and self.available else None

    @property
    def precision(self) -> float | None:
        return self.true_alerts / self.alerts if self.alerts and self.available else None

    @property
    def recall_ci95(self) -> tuple[float, float] | None:
        """Wilson 95 % interval of ``detected`` of ``incidents``; None without a recall."""
        return wilson(self.detected, self.incidents) if self.recall is not None else None

    @property
    def precision_ci95(self) -> tuple[float, float] | None:
        """Wilson 95 % interval of ``true_alerts`` of ``alerts``; None without a precision."""
        return wilson(self.true_alerts, self.alerts) if self.precision is not None else None


@dataclass
class Score:
    rules: dict[str, RuleScore]
    false_alerts: int
    honest_hours: float
    student_hours: float
    calls: dict[str, int]
    naive_calls: int
    chunks: int
    false_alert_list: list[dict[str, Any]] = field(default_factory=list)

    @property
    def false_alerts_per_student_hour(self) -> float:
        return self.false_alerts / self.honest_hours if self.honest_hours else 0.0

    @property
    def false_alerts_ci95(self) -> tuple[float, float] | None:
        """Exact Poisson 95 % interval of false alerts per honest student-hour."""
        return poisson_exact(self.false_alerts, self.honest_hours) if self.honest_hours else None

    @property
    def calls_vs_naive(self) -> float:
        return sum(self.calls.values()) / self.naive_calls if self.naive_calls else 0.0

    def calls_per_student_hour(self) -> dict[str, float]:
        hours = self.student_hours or 1.0
        return {api: round(n / hours, 1) for api, n in self.calls.items()}

    def to_dict(self) -> dict[str, Any]:
        rules = {
            name: {
                "precision": _round(r.precision),
                "precision_ci95": _interval(r.precision_ci95),
                "recall": _round(r.recall),
                "recall_ci95": _interval(r.recall_ci95),
                "incidents": r.incidents,
                "detected": r.detected,
                "alerts": r.alerts,
                "true_alerts": r.true_alerts,
                "available": r.available,
            }
            for name, r in self.rules.items()
        }
        return {
            "rules": rules,
            "false_alerts_per_student_hour": round(self.false_alerts_per_student_hour, 3),
            "false_alerts_per_student_hour_ci95": _interval(self.false_alerts_ci95),
            "false_alerts_interval": "exact Poisson (Garwood) 95 %, over honest student-hours",
            "false_alerts": self.false_alerts,
            "honest_student_hours": round(self.honest_hours, 4),
            "student_hours": round(self.student_hours, 4),
            "chunks": self.chunks,
            "calls": dict(self.calls),
            "naive_calls": self.naive_calls,
            "calls_vs_naive": round(self.calls_vs_naive, 4),
            "calls_per_student_hour": self.calls_per_student_hour(),
            "naive_calls_per_student_hour": round(
                self.naive_calls / (self.student_hours or 1.0), 1
            ),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _interval(value: tuple[float, float] | None) -> list[float] | None:
    return None if value is None else [round(value[0], 3), round(value[1], 3)]


def score(runs: list[SessionRun], rules: tuple[str, ...] = RULE_NAMES) -> Score:
    """The figures of one pass over the suite (see the module docstring) for ``rules``
    (the video's by default; the speech suite scores TALKING)."""
    by_rule = {name: RuleScore(name) for name in rules}
    unavailable: set[str] = set()
    false_alerts: list[dict[str, Any]] = []
    calls = dict.fromkeys(API_NAMES, 0)
    naive = chunks = 0
    honest = total = 0.0
    for run in runs:
        honest += run.honest_seconds()
        total += run.seconds
        for row in run.results:
            if row.get("source") != "camera" or row.get("status") != "ok":
                continue
            chunks += 1
            naive += len(API_NAMES)
            for api in API_NAMES:
                calls[api] += int((row.get("calls") or {}).get(api, 0))
            unavailable |= set(row.get("unavailable_rules") or [])
        for incident in run.incidents:
            by_rule[incident.rule].incidents += 1
            if any(
                alert["type"] == incident.rule and _overlaps(run.span(alert), incident)
                for alert in run.alerts
            ):
                by_rule[incident.rule].detected += 1
        for alert in run.alerts:
            rule = by_rule[alert["type"]]
            rule.alerts += 1
            if any(
                i.rule == alert["type"] and _overlaps(run.span(alert), i) for i in run.incidents
            ):
                rule.true_alerts += 1
            else:
                false_alerts.append({"student": run.name, **alert})
    for name in unavailable:
        by_rule[name].available = False
    return Score(
        rules=by_rule,
        false_alerts=len(false_alerts),
        honest_hours=honest / 3600.0,
        student_hours=total / 3600.0,
        calls=calls,
        naive_calls=naive,
        chunks=chunks,
        false_alert_list=false_alerts,
    )


def group_scores(runs: list[SessionRun]) -> dict[str, dict[str, Any]]:
    """Per person group the suite labels (``women``, ``men``, ``darker skin``): the
    figures a false accusation or a missed incident would show first (all rules' incidents
    detected, FACE_MISMATCH recall and precision, false alerts per honest hour), each with
    its 95 % interval, and how many sessions and people it rests on."""
    groups: dict[str, list[SessionRun]] = {}
    for run in runs:
        for group in run.groups:
            groups.setdefault(group, []).append(run)
    figures = {}
    for group, members in sorted(groups.items()):
        part = score(members)
        incidents = sum(r.incidents for r in part.rules.values() if r.available)
        detected = sum(r.detected for r in part.rules.values() if r.available)
        mismatch = part.rules["FACE_MISMATCH"]
        figures[group] = {
            "sessions": len(members),
            "people": len({run.person for run in members if run.person}),
            "honest_student_hours": round(part.honest_hours, 4),
            "incidents": incidents,
            "detected": detected,
            "recall": _round(detected / incidents if incidents else None),
            "recall_ci95": _interval(wilson(detected, incidents) if incidents else None),
            "face_mismatch_recall": _round(mismatch.recall),
            "face_mismatch_precision": _round(mismatch.precision),
            "face_mismatch_precision_ci95": _interval(mismatch.precision_ci95),
            "false_alerts": part.false_alerts,
            "false_alerts_per_student_hour": round(part.false_alerts_per_student_hour, 3),
            "false_alerts_per_student_hour_ci95": _interval(part.false_alerts_ci95),
        }
    return figures


def _overlaps(span: tuple[float, float], incident: Incident) -> bool:
    return span[0] < incident.end and incident.start < span[1]


def recall_shortfalls(scheduled: Score, naive: Score) -> list[str]:
    """One message per rule whose scheduled recall is below the naive plan's."""
    messages = []
    for name, rule in scheduled.rules.items():
        ours, baseline = rule.recall, naive.rules[name].recall
        if ours is not None and baseline is not None and ours < baseline:
            messages.append(
                f"{name}: the schedule's recall {ours:.2f} ({rule.detected} of "
                f"{rule.incidents}) is below the naive plan's {baseline:.2f}: the schedule "
                f"skipped a check the naive plan made"
            )
    return messages


def flag_delays(runs: list[SessionRun], rule: str = "FACE_MISMATCH") -> list[dict[str, Any]]:
    """Per labelled ``rule`` incident: on which of its chunks the first true alert was raised.

    ``chunks`` counts from the chunk the incident starts in (1: flagged on that chunk);
    None when no alert of the rule overlaps the incident.
    """
    delays = []
    for run in runs:
        for incident in run.incidents:
            if incident.rule != rule:
                continue
            start = next(
                (
                    i
                    for i, (begin, end) in enumerate(run.chunk_times)
                    if begin <= incident.start < end
                ),
                None,
            )
            raised = [
                int(a["sequence"])
                for a in run.alerts
                if a["type"] == rule and _overlaps(run.span(a), incident)
            ]
            chunks = None if start is None or not raised else min(raised) - start + 1
            delays.append({"session": run.name, "start": incident.start, "chunks": chunks})
    return delays


def failures(scheduled: Score, naive: Score, runs: list[SessionRun]) -> list[str]:
    """Why the scheduled pass fails the eval (see the module docstring); empty: it passes."""
    messages = recall_shortfalls(scheduled, naive)
    for delay in flag_delays(runs):
        if delay["chunks"] is None or delay["chunks"] > FLAG_WITHIN_CHUNKS:
            when = "never" if delay["chunks"] is None else f"on its chunk {delay['chunks']}"
            messages.append(
                f"FACE_MISMATCH: the impostor of {delay['session']} (from {delay['start']:g} s) "
                f"was flagged {when}, not within {FLAG_WITHIN_CHUNKS} chunks"
            )
    return messages

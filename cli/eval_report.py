"""The figures of ``proctor eval``: the JSON report and the tables printed from it."""

from __future__ import annotations

from typing import Any

from cli.evaluation import FLAG_WITHIN_CHUNKS, Score, SessionRun, flag_delays, group_scores
from proctoring.settings import Settings

__all__ = ["TARGETS", "report_of", "tables", "targets"]

_GAZE_SCENARIOS = ("glance_left", "glance_right")


def report_of(
    passes: dict[str, tuple[Score, list[SessionRun]]], settings: Settings
) -> dict[str, Any]:
    scheduled, runs = passes["scheduled"]
    naive, _ = passes["naive"]
    figures = scheduled.to_dict()
    gaze = [
        {
            "scenario": run.name,
            "sequence": row["sequence"],
            "time": round(run.chunk_times[row["sequence"]][0] + float(row.get("frame_time", 0)), 2),
            "analysed": row.get("analysed"),
            "yaw": (row.get("face_details") or [{}])[0].get("yaw"),
            "gaze_ratio": (row.get("face_details") or [{}])[0].get("gaze_ratio"),
            "gaze": (row.get("face_details") or [{}])[0].get("gaze"),
        }
        for run in runs
        if run.name in _GAZE_SCENARIOS
        for row in run.results
    ]
    return {
        **{
            rule: {"precision": r["precision"], "recall": r["recall"]}
            for rule, r in figures["rules"].items()
        },
        **figures,
        "engine": settings.engine,
        "frame_position": settings.frame_position,
        "naive": naive.to_dict(),
        "false_alert_list": [
            {k: a.get(k) for k in ("student", "type", "first_sequence", "sequence")}
            for a in scheduled.false_alert_list
        ],
        "gaze": gaze,
        "groups": group_scores(runs),
        "enrolment_refused": {
            run.name: run.enrolment_refused for run in runs if run.enrolment_refused
        },
        "people": len({run.person for run in runs if run.person}),
        "sessions_count": len(runs),
        "targets": targets(scheduled, naive, runs),
        "impostor_flagged_on_chunk": flag_delays(runs),
        "naive_impostor_flagged_on_chunk": flag_delays(passes["naive"][1]),
        "sessions": {
            run.name: [
                {
                    key: row.get(key)
                    for key in (
                        "sequence",
                        "analysed",
                        "faces",
                        "identity",
                        "distance",
                        "calls",
                        "difference",
                        "face_details",
                    )
                }
                for row in run.results
            ]
            for run in runs
        },
    }


TARGETS = {
    "recall": 0.95,
    "face_mismatch_precision": 0.95,
    "false_alerts_per_student_hour": 1.0,
    "honest_student_hours": 1.0,
    "calls_vs_naive": 0.25,
}
"""Issue 14's acceptance figures, checked on the suite's test half (reported, not a gate:
the gates are :func:`~cli.evaluation.failures`)."""


def targets(scheduled: Score, naive: Score, runs: list[SessionRun]) -> list[dict[str, Any]]:
    """Each target, its measured value and whether it is met."""
    rows: list[dict[str, Any]] = []
    for name, rule in scheduled.rules.items():
        if rule.recall is None:
            continue
        low = rule.recall_ci95[0] if rule.recall_ci95 else None
        rows.append(
            {
                "target": f"{name} recall >= {TARGETS['recall']}",
                "value": f"{rule.recall:.3f} (95% lower bound {low:.3f})",
                "met": rule.recall >= TARGETS["recall"],
            }
        )
    mismatch = scheduled.rules["FACE_MISMATCH"]
    if mismatch.precision is not None:
        rows.append(
            {
                "target": f"FACE_MISMATCH precision >= {TARGETS['face_mismatch_precision']}",
                "value": f"{mismatch.precision:.3f} ({mismatch.true_alerts} of {mismatch.alerts})",
                "met": mismatch.precision >= TARGETS["face_mismatch_precision"],
            }
        )
    rows += [
        {
            "target": f"false alerts per honest student-hour <= "
            f"{TARGETS['false_alerts_per_student_hour']:g}",
            "value": f"{scheduled.false_alerts_per_student_hour:.2f} "
            f"({scheduled.false_alerts} in {scheduled.honest_hours:.2f} h)",
            "met": scheduled.false_alerts_per_student_hour
            <= TARGETS["false_alerts_per_student_hour"],
        },
        {
            "target": f"honest student-hours >= {TARGETS['honest_student_hours']:g}",
            "value": f"{scheduled.honest_hours:.2f}",
            "met": scheduled.honest_hours >= TARGETS["honest_student_hours"],
        },
        {
            "target": "scheduled recall = naive recall, every rule",
            "value": ", ".join(
                f"{n} {r.recall:.2f}/{naive.rules[n].recall:.2f}"
                for n, r in scheduled.rules.items()
                if r.recall is not None and naive.rules[n].recall is not None
            ),
            "met": all(
                (r.recall or 0) >= (naive.rules[n].recall or 0) for n, r in scheduled.rules.items()
            ),
        },
        {
            "target": f"calls <= {TARGETS['calls_vs_naive']:.0%} of naive",
            "value": f"{scheduled.calls_vs_naive:.1%}",
            "met": scheduled.calls_vs_naive <= TARGETS["calls_vs_naive"],
        },
    ]
    delays = flag_delays(runs)
    if delays:
        late = [d for d in delays if d["chunks"] is None or d["chunks"] > FLAG_WITHIN_CHUNKS]
        rows.append(
            {
                "target": f"every impostor flagged within {FLAG_WITHIN_CHUNKS} chunks",
                "value": f"{len(delays) - len(late)} of {len(delays)}",
                "met": not late,
            }
        )
    return rows


def _fmt(value: float | None, interval: list[float] | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if interval is None else f"{value:.2f} {_ci(interval)}"


def _ci(interval: list[float] | None) -> str:
    return "-" if interval is None else f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def tables(report: dict[str, Any]) -> list[str]:
    naive = report["naive"]
    lines = [
        "",
        f"engine: {report['engine']}, frame: {report['frame_position']}",
        "",
        "| rule | incidents | alerts | recall [95% Wilson] | precision [95% Wilson] "
        "| recall (naive plan) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rule, r in report["rules"].items():
        if not r["available"]:
            lines.append(f"| {rule} | {r['incidents']} | - | unavailable | unavailable | - |")
            continue
        lines.append(
            f"| {rule} | {r['incidents']} | {r['alerts']} | "
            f"{_fmt(r['recall'], r['recall_ci95'])} | "
            f"{_fmt(r['precision'], r['precision_ci95'])} | "
            f"{_fmt(naive['rules'][rule]['recall'])} |"
        )
    lines += [
        "",
        f"false alerts on honest segments: {report['false_alerts']} in "
        f"{report['honest_student_hours'] * 60:.1f} student-minutes = "
        f"{report['false_alerts_per_student_hour']:.2f} per student-hour, "
        f"95% {_ci(report['false_alerts_per_student_hour_ci95'])} "
        f"(exact Poisson over honest hours; naive plan: "
        f"{naive['false_alerts_per_student_hour']:.2f})",
        "",
        "| Rekognition API | calls per student-hour (scheduled) | naive plan |",
        "| --- | ---: | ---: |",
    ]
    naive_each = report["naive_calls_per_student_hour"] / 3
    for api, per_hour in report["calls_per_student_hour"].items():
        lines.append(f"| {api} | {per_hour:.0f} | {naive_each:.0f} |")
    lines += [
        f"| all | {sum(report['calls_per_student_hour'].values()):.0f} | "
        f"{report['naive_calls_per_student_hour']:.0f} |",
        "",
        f"calls vs naive plan: {report['calls_vs_naive']:.1%} "
        f"({sum(report['calls'].values())} of {report['naive_calls']} "
        f"over {report['chunks']} chunks)",
    ]
    if report["impostor_flagged_on_chunk"]:
        naive_delays = {
            (d["session"], d["start"]): d["chunks"]
            for d in report["naive_impostor_flagged_on_chunk"]
        }
        lines += [
            "",
            "| impostor session | takes the seat at (s) | flagged on their chunk | naive plan |",
        ]
        lines.append("| --- | ---: | ---: | ---: |")
        for d in report["impostor_flagged_on_chunk"]:
            naive_chunks = naive_delays.get((d["session"], d["start"]))
            lines.append(
                f"| {d['session']} | {d['start']:g} | {d['chunks'] or 'never'} | "
                f"{naive_chunks or 'never'} |"
            )
    if report["gaze"]:
        lines += ["", "| scenario | chunk | frame at (s) | head yaw | pupil ratio | gaze |"]
        lines.append("| --- | ---: | ---: | ---: | ---: | --- |")
        for g in report["gaze"]:
            lines.append(
                f"| {g['scenario']} | {g['sequence']} | {g['time']} | {g['yaw']} | "
                f"{g['gaze_ratio']} | {g['gaze']} ({g['analysed']}) |"
            )
    if report["groups"]:
        lines += [
            "",
            "| group | people | sessions | honest h | recall, all rules [95%] "
            "| FACE_MISMATCH recall | FACE_MISMATCH precision [95%] | false alerts / h [95%] |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for group, g in report["groups"].items():
            false = _fmt(
                g["false_alerts_per_student_hour"], g["false_alerts_per_student_hour_ci95"]
            )
            lines.append(
                f"| {group} | {g['people']} | {g['sessions']} | "
                f"{g['honest_student_hours']:.2f} | {_fmt(g['recall'], g['recall_ci95'])} | "
                f"{_fmt(g['face_mismatch_recall'])} | "
                f"{_fmt(g['face_mismatch_precision'], g['face_mismatch_precision_ci95'])} | "
                f"{false} |"
            )
    lines += ["", "| target | measured | met |", "| --- | --- | --- |"]
    lines += [
        f"| {t['target']} | {t['value']} | {'yes' if t['met'] else 'NO'} |"
        for t in report["targets"]
    ]
    if report.get("enrolment_refused"):
        lines += [
            "",
            f"enrolment refused (the student sent to the proctor before the exam): "
            f"{len(report['enrolment_refused'])} sessions",
        ]
        lines += [f"  {name}: {why}" for name, why in report["enrolment_refused"].items()]
    if report["false_alert_list"]:
        lines += ["", "false alerts:"]
        lines += [f"  {a}" for a in report["false_alert_list"]]
    return lines

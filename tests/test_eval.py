"""``proctor eval``: labelled scenarios through the real pipeline, figures printed and written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.eval_report import tables, targets
from cli.eval_suite import Incident, SuiteError, load_suite
from cli.evaluation import SessionRun, failures, flag_delays, group_scores, score
from tests.conftest import require_data

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "producer" / "scenarios" / "eval"


def test_the_repo_suite_loads_and_labels_every_local_rule() -> None:
    suite = load_suite(EVAL / "suite.yaml")
    rules = {i.rule for entry in suite.scenarios for i in entry.incidents}
    assert rules == {"NO_FACE", "MULTIPLE_FACES", "FACE_MISMATCH", "LOOKING_AWAY", "FACE_NOT_CLEAR"}


def test_scoring_counts_true_and_false_alerts_by_overlap() -> None:
    times = [(5.0 * i, 5.0 * i + 5) for i in range(6)]
    run = SessionRun(
        name="s",
        incidents=(Incident(rule="NO_FACE", start=10, end=20),),
        chunk_times=times,
        results=[{"source": "camera", "status": "ok", "calls": {"DetectFaces": 1}} for _ in times],
        alerts=[
            {"type": "NO_FACE", "first_sequence": 2, "sequence": 3},
            {"type": "MULTIPLE_FACES", "first_sequence": 4, "sequence": 5},
        ],
    )
    figures = score([run]).to_dict()
    assert figures["rules"]["NO_FACE"] == {
        "precision": 1.0,
        "precision_ci95": [0.207, 1.0],  # Wilson: 1 of 1 is no proof of 100 %
        "recall": 1.0,
        "recall_ci95": [0.207, 1.0],
        "incidents": 1,
        "detected": 1,
        "alerts": 1,
        "true_alerts": 1,
        "available": True,
    }
    assert figures["rules"]["MULTIPLE_FACES"]["precision"] == 0.0
    assert figures["false_alerts"] == 1
    assert figures["false_alerts_per_student_hour"] == pytest.approx(1 / (20 / 3600), rel=1e-3)
    assert figures["calls_vs_naive"] == pytest.approx(1 / 3, abs=1e-3)


def _session(name: str, incidents: int, detected: int, false_alerts: int) -> SessionRun:
    """``incidents`` NO_FACE incidents of 5 s, one every 20 s, ``detected`` of them alerted,
    and ``false_alerts`` MULTIPLE_FACES alerts on honest chunks."""
    chunks = 4 * max(incidents, false_alerts, 1)
    times = [(5.0 * i, 5.0 * i + 5) for i in range(chunks)]
    alerts = [
        {"type": "NO_FACE", "first_sequence": 4 * i, "sequence": 4 * i} for i in range(detected)
    ]
    alerts += [
        {"type": "MULTIPLE_FACES", "first_sequence": 4 * i + 2, "sequence": 4 * i + 2}
        for i in range(false_alerts)
    ]
    return SessionRun(
        name=name,
        incidents=tuple(
            Incident(rule="NO_FACE", start=20.0 * i, end=20.0 * i + 5) for i in range(incidents)
        ),
        chunk_times=times,
        results=[{"source": "camera", "status": "ok", "calls": {}} for _ in times],
        alerts=alerts,
    )


def test_recall_precision_and_false_alerts_carry_their_95_percent_intervals() -> None:
    """8 of 10 incidents found: Wilson [0.49, 0.94]; 2 false alerts in 0.5 honest hours:
    4 per hour, exact Poisson [0.48, 14.45] (2 events: 0.2422 to 7.2247, over 0.5 h)."""
    run = _session("a", incidents=10, detected=8, false_alerts=2)
    figures = score([run]).to_dict()
    assert figures["rules"]["NO_FACE"]["recall"] == 0.8
    assert figures["rules"]["NO_FACE"]["recall_ci95"] == [0.49, 0.943]
    assert figures["rules"]["NO_FACE"]["precision_ci95"] == [0.676, 1.0]  # 8 of 8
    assert figures["rules"]["MULTIPLE_FACES"]["precision_ci95"] == [0.0, 0.658]  # 0 of 2
    assert figures["rules"]["LOOKING_AWAY"]["recall_ci95"] is None, "nothing to recall"
    honest = figures["honest_student_hours"]
    assert honest == pytest.approx(150 / 3600, abs=1e-4)
    low, high = figures["false_alerts_per_student_hour_ci95"]
    assert low == pytest.approx(0.2422 / honest, rel=1e-3)
    assert high == pytest.approx(7.2247 / honest, rel=1e-3)
    assert "Poisson" in figures["false_alerts_interval"]


def test_the_printed_table_shows_the_intervals() -> None:
    runs = [_session("a", incidents=10, detected=8, false_alerts=0)]
    figures = score(runs).to_dict()
    report = {
        **figures,
        "engine": "local",
        "frame_position": "middle",
        "naive": figures,
        "impostor_flagged_on_chunk": [],
        "gaze": [],
        "false_alert_list": [],
        "groups": group_scores(runs),
        "targets": targets(score(runs), score(runs), runs),
    }
    lines = tables(report)
    assert "| NO_FACE | 10 | 8 | 0.80 [0.49, 0.94] | 1.00 [0.68, 1.00] | 0.80 |" in lines
    summary = next(line for line in lines if line.startswith("false alerts on honest"))
    # 0 false alerts in 2.5 honest minutes: up to 3.69 / (150 / 3600) = 88.5 per hour
    assert "0.00 per student-hour, 95% [0.00, 88.53]" in summary
    assert "| NO_FACE recall >= 0.95 | 0.800 (95% lower bound 0.490) | NO |" in lines
    assert "| honest student-hours >= 1 | 0.04 | NO |" in lines


def test_figures_are_broken_down_by_person_group_with_intervals() -> None:
    """A group's false alerts and misses show on their own, not averaged away."""
    woman = _session("w", incidents=4, detected=2, false_alerts=2)
    woman.groups, woman.person = ("women", "darker skin"), "ann"
    man = _session("m", incidents=4, detected=4, false_alerts=0)
    man.groups, man.person = ("men",), "bob"
    groups = group_scores([woman, man])
    assert list(groups) == ["darker skin", "men", "women"]
    assert groups["women"]["recall"] == 0.5
    assert groups["women"]["recall_ci95"] == [0.15, 0.85]
    assert groups["women"]["false_alerts"] == 2
    assert groups["men"]["recall"] == 1.0 and groups["men"]["false_alerts"] == 0
    assert groups["men"]["people"] == 1 and groups["men"]["sessions"] == 1
    assert groups["women"]["false_alerts_per_student_hour_ci95"][0] > 0


def test_a_suite_entry_is_a_file_or_an_inline_scenario_with_a_name(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "scenarios:\n"
        "  - name: ann-leaves\n"
        "    scenario: {segments: [{empty: 5}]}\n"
        "    person: ann\n"
        "    groups: [women]\n"
    )
    (entry,) = load_suite(suite).scenarios
    assert (entry.label, entry.person, entry.groups) == ("ann-leaves", "ann", ("women",))
    for body, message in (
        ("  - scenario: {segments: [{empty: 5}]}\n", "an inline scenario needs a 'name'"),
        ("  - {name: x}\n", "exactly one of 'file' or 'scenario'"),
        (
            "  - {name: x, scenario: {segments: [{empty: 5}]}}\n"
            "  - {name: x, scenario: {segments: [{empty: 5}]}}\n",
            "two sessions have the same name",
        ),
    ):
        suite.write_text("scenarios:\n" + body)
        with pytest.raises(SuiteError, match=message):
            load_suite(suite)


@pytest.mark.slow
def test_eval_runs_a_suite_through_the_pipeline_and_writes_the_figures(tmp_path: Path) -> None:
    require_data()
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"scenarios:\n"
        f"  - file: {EVAL / 'glance_left.yaml'}\n"
        f"    register_frame: video/center_focus.mp4\n"
        f"  - file: {EVAL / 'leaving_video.yaml'}\n"
        f"    register_frame: video/center_focus.mp4\n"
        f"    incidents:\n"
        f"      - {{rule: NO_FACE, start: 5, end: 15}}\n"
    )
    out = tmp_path / "figures.json"
    completed = subprocess.run(
        [sys.executable, "-m", "cli", "eval", "--suite", str(suite), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "| NO_FACE | 1 | 1 | 1.00 [0.21, 1.00] | 1.00 [0.21, 1.00] | 1.00 |" in (
        completed.stdout
    )
    assert "unavailable" in completed.stdout, "object rules say so without a detector"
    figures = json.loads(out.read_text())
    assert figures["rules"]["NO_FACE"]["recall"] == 1.0
    assert figures["NO_FACE"]["precision"] == 1.0
    assert figures["rules"]["PROHIBITED_OBJECT"]["available"] is False
    assert figures["false_alerts_per_student_hour"] == 0
    assert 0 < figures["calls_vs_naive"] < 1
    assert [g["gaze"] for g in figures["gaze"]][:3] == ["center", "left", "center"]


def _swap_run(alert_on: int | None) -> SessionRun:
    """Five chunks; someone else from 10 s (chunk 2); FACE_MISMATCH raised on ``alert_on``."""
    times = [(5.0 * i, 5.0 * i + 5) for i in range(5)]
    return SessionRun(
        name="swap",
        incidents=(Incident(rule="FACE_MISMATCH", start=10, end=25),),
        chunk_times=times,
        results=[{"source": "camera", "status": "ok", "calls": {}} for _ in times],
        alerts=[]
        if alert_on is None
        else [{"type": "FACE_MISMATCH", "first_sequence": 2, "sequence": alert_on}],
    )


def test_a_schedule_that_loses_recall_or_flags_an_impostor_late_fails_the_eval() -> None:
    naive = [_swap_run(3)]
    assert failures(score(naive), score(naive), naive) == []
    assert flag_delays(naive) == [{"session": "swap", "start": 10, "chunks": 2}]
    missed = [_swap_run(None)]
    messages = failures(score(missed), score(naive), missed)
    assert messages[0].startswith("FACE_MISMATCH: the schedule's recall 0.00 (0 of 1)")
    assert "below the naive plan's 1.00" in messages[0]
    assert "swap (from 10 s) was flagged never" in messages[1]
    late = [_swap_run(4)]
    assert failures(score(late), score(naive), late) == [
        "FACE_MISMATCH: the impostor of swap (from 10 s) was flagged on its chunk 3, "
        "not within 2 chunks"
    ]


@pytest.mark.slow
def test_eval_fails_naming_the_rule_when_the_schedule_skips_the_swap_recheck(
    tmp_path: Path,
) -> None:
    """The same swap passes with the default schedule and fails with the re-check off."""
    require_data()
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"scenarios:\n"
        f"  - file: {EVAL / 'swap_d19_aoc.yaml'}\n"
        f"    register_frame: talking/liveportrait/d19.mp4\n"
        f"    incidents:\n"
        f"      - {{rule: FACE_MISMATCH, start: 10, end: 25}}\n"
    )
    command = [sys.executable, "-m", "cli", "eval", "--suite", str(suite)]
    outcomes = {}
    for name, above in (("default", None), ("no re-check", "255")):
        env = {k: v for k, v in os.environ.items() if k != "PROCTOR_FACE_CHANGE_ABOVE"}
        if above is not None:
            env["PROCTOR_FACE_CHANGE_ABOVE"] = above  # face content never "changes"
        out = tmp_path / f"{name}.json"
        outcomes[name] = (
            subprocess.run(
                [*command, "--json", str(out)],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
                cwd=tmp_path,
                env=env,
            ),
            out,
        )
    passed, figures = outcomes["default"]
    assert passed.returncode == 0, passed.stderr[-3000:]
    assert "| FACE_MISMATCH | 1 | 1 | 1.00 [0.21, 1.00] | 1.00 [0.21, 1.00] | 1.00 |" in (
        passed.stdout
    )
    assert json.loads(figures.read_text())["impostor_flagged_on_chunk"] == [
        {"session": "swap_d19_aoc", "start": 10, "chunks": 2}
    ]
    failed, figures = outcomes["no re-check"]
    assert failed.returncode != 0
    assert "FACE_MISMATCH: the schedule's recall 0.00 (0 of 1)" in failed.stderr
    assert "below the naive plan's 1.00" in failed.stderr
    assert json.loads(figures.read_text())["failures"], "the figures are written all the same"

"""``proctor eval --speech``: TALKING on the speech suite, with the consumer's own code.

Each session of :mod:`producer.speech_suite` is rendered into chunks (MP4,
video and AAC audio); each chunk goes through :func:`consumer.speech.hear` in
the process pool, the job the consumer runs on every chunk of an exam with
``audio: true``, and its speech through the TALKING rule
(:func:`proctoring.rules.speech.judge`) in sequence order, with the policy's
defaults (more than 10 s of speech in 60 s). The wiring between them (Kinesis,
DynamoDB, the alert) is what ``tests/consumer/test_speech.py`` runs; this suite
measures the detector and the rule, which is where the figures come from.

Scoring is :func:`cli.evaluation.score`: recall and precision with
their Wilson intervals, false alerts per honest student-hour with the exact
Poisson interval. The detector's threshold is chosen on the ``development``
half (:func:`choose_threshold`: the highest recall without a false alert, the
default 0.5 on a tie) and the figures are reported on the ``test`` half.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from cli.eval_suite import Incident
from cli.evaluation import Score, SessionRun, score
from consumer.speech import Heard, hear
from proctoring.rules import Policy
from proctoring.rules.speech import SpeechState, judge
from proctoring.speech import (
    Speech,
    SpeechError,
    chunk_audio,
    speech_probabilities,
    speech_segments,
)
from producer.speech_suite import (
    BACKGROUNDS,
    CHUNK_SECONDS,
    SpeechHalf,
    render,
    speech_sessions,
)

__all__ = ["THRESHOLDS", "choose_threshold", "run_speech_eval", "speech_runs"]

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
"""The detector thresholds tried on the development half."""
_T0_MS = 1_795_000_000_000


async def speech_runs(
    half: SpeechHalf,
    data_dir: Path,
    executor: Executor,
    thresholds: tuple[float, ...] = (0.5,),
    policy: Policy | None = None,
    backgrounds: tuple[str, ...] = tuple(BACKGROUNDS),
) -> dict[float, list[SessionRun]]:
    """Every session of ``half`` (over ``backgrounds``) heard and judged at each threshold:
    the runs per threshold."""
    policy = policy or Policy(audio=True)
    loop = asyncio.get_running_loop()
    runs: dict[float, list[SessionRun]] = {t: [] for t in thresholds}
    for session in speech_sessions(half, backgrounds):
        chunks = await loop.run_in_executor(
            executor, functools.partial(_rendered, session, half, data_dir)
        )
        heard: list[list[Heard]] = [
            list(batch)
            for batch in await asyncio.gather(
                *(
                    loop.run_in_executor(executor, functools.partial(_hear_all, data, thresholds))
                    for data in chunks
                )
            )
        ]
        for index, threshold in enumerate(thresholds):
            state, alerts = SpeechState(), []
            for sequence, per_threshold in enumerate(heard):
                speech = per_threshold[index]
                if isinstance(speech, SpeechError):
                    raise speech
                assert isinstance(speech, Speech)
                state, found = judge(
                    state,
                    sequence=sequence,
                    captured_ms=_T0_MS + sequence * CHUNK_SECONDS * 1000,
                    duration_s=speech.duration,
                    segments=speech.segments,
                    policy=policy,
                )
                if found is not None:
                    alerts.append(
                        {
                            "type": found.finding.rule,
                            "sequence": sequence,
                            "first_sequence": sequence,
                            "speech_s": found.speech_s,
                        }
                    )
            runs[threshold].append(
                SessionRun(
                    name=session.name,
                    incidents=tuple(
                        Incident(rule="TALKING", start=a, end=b) for a, b in session.incidents
                    ),
                    chunk_times=[
                        (i * CHUNK_SECONDS, (i + 1) * CHUNK_SECONDS) for i in range(len(chunks))
                    ],
                    results=[],
                    alerts=alerts,
                    groups=(session.background,),
                )
            )
    return runs


def _rendered(session: Any, half: SpeechHalf, data_dir: Path) -> list[bytes]:
    return list(render(session, half, data_dir))


def _hear_all(data: bytes, thresholds: tuple[float, ...]) -> list[Heard]:
    """The consumer's job at each threshold, the detector run once."""
    if len(thresholds) == 1:
        return [hear(data, threshold=thresholds[0])]
    samples = chunk_audio(data)
    assert samples is not None
    probabilities = speech_probabilities(samples)
    return [speech_segments(samples, threshold=t, probabilities=probabilities) for t in thresholds]


def choose_threshold(by_threshold: dict[float, Score]) -> float:
    """The highest TALKING recall with the fewest false alerts; 0.5 (Silero's default) or
    the nearest to it on a tie."""

    def key(item: tuple[float, Score]) -> tuple[int, float, float]:
        threshold, scored = item
        recall = scored.rules["TALKING"].recall or 0.0
        return (scored.false_alerts, -recall, abs(threshold - 0.5))

    return min(by_threshold.items(), key=key)[0]


async def run_speech_eval(
    data_dir: Path,
    executor: Executor,
    *,
    json_path: Path | None = None,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Choose the threshold on the development half, report on the test half."""
    development = await speech_runs("development", data_dir, executor, THRESHOLDS)
    dev_scores = {t: score(runs, rules=("TALKING",)) for t, runs in development.items()}
    chosen = choose_threshold(dev_scores)
    test = (await speech_runs("test", data_dir, executor, (chosen,)))[chosen]
    scored = score(test, rules=("TALKING",))
    report = {
        "suite": "speech",
        "threshold": chosen,
        "policy": {"talking_seconds": 10.0, "talking_window": 60},
        "development": {
            str(t): _figures(s) for t, s in sorted(dev_scores.items(), key=lambda i: i[0])
        },
        "test": _figures(scored),
        "by_background": {
            background: _figures(score([r for r in test if background in r.groups], ("TALKING",)))
            for background in ("silence", "room", "cafe")
        },
        "false_alerts": [
            {"student": a["student"], "sequence": a["sequence"], "speech_s": a["speech_s"]}
            for a in scored.false_alert_list
        ],
    }
    for line in _table(report):
        out(line)
    if json_path is not None:
        await asyncio.to_thread(json_path.write_text, json.dumps(report, indent=2))
    return report


def _figures(scored: Score) -> dict[str, Any]:
    figures = scored.to_dict()
    talking = figures["rules"]["TALKING"]
    return {
        "recall": talking["recall"],
        "recall_ci95": talking["recall_ci95"],
        "precision": talking["precision"],
        "precision_ci95": talking["precision_ci95"],
        "incidents": talking["incidents"],
        "detected": talking["detected"],
        "alerts": talking["alerts"],
        "false_alerts": figures["false_alerts"],
        "false_alerts_per_student_hour": figures["false_alerts_per_student_hour"],
        "false_alerts_per_student_hour_ci95": figures["false_alerts_per_student_hour_ci95"],
        "honest_student_hours": figures["honest_student_hours"],
    }


def _table(report: dict[str, Any]) -> list[str]:
    def row(name: str, f: dict[str, Any]) -> str:
        ci = f["recall_ci95"] or [0, 0]
        fa = f["false_alerts_per_student_hour_ci95"] or [0, 0]
        recall = "-" if f["recall"] is None else f"{f['recall']:.2f}"
        return (
            f"{name:<22} recall {recall} [{ci[0]:.2f}, {ci[1]:.2f}] "
            f"({f['detected']}/{f['incidents']})  false alerts/honest h "
            f"{f['false_alerts_per_student_hour']:.2f} [{fa[0]:.2f}, {fa[1]:.2f}] "
            f"({f['false_alerts']} in {f['honest_student_hours']:.2f} h)"
        )

    lines = ["TALKING, speech suite (threshold chosen on development, figures on test)"]
    lines += [row(f"development @{t}", f) for t, f in report["development"].items()]
    lines.append(row(f"TEST @{report['threshold']}", report["test"]))
    lines += [row(f"  test, {b}", f) for b, f in report["by_background"].items()]
    return lines

"""The speech suite of ``proctor eval``: the test half's café sessions (the hardest background)
through the consumer's own speech job and the TALKING rule, scored like the video rules."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

import pytest

from cli.eval_speech import choose_threshold, speech_runs
from cli.evaluation import Score, score
from proctoring.speech import load_pcm
from producer.speech_suite import SPEAKERS, SPEECH_BAND_SHARE, speech_band_share, speech_sessions
from tests.conftest import DATA, require_data

pytestmark = pytest.mark.slow


def test_the_suite_splits_speakers_into_two_halves_and_labels_only_talking() -> None:
    assert not set(SPEAKERS["development"]) & set(SPEAKERS["test"])
    files = [set(sum(SPEAKERS[h].values(), ())) for h in ("development", "test")]
    assert not files[0] & files[1], "no recording in both halves"
    sessions = speech_sessions("test")
    assert sum(bool(s.incidents) for s in sessions) == 3 * len(SPEAKERS["test"])
    assert all(not s.incidents for s in sessions if s.speaker is None)


def test_talking_over_cafe_noise_is_found_and_the_cafe_alone_never_raises_it(
    pool: Executor,
) -> None:
    require_data()
    runs = asyncio.run(speech_runs("test", DATA, pool, backgrounds=("cafe",)))[0.5]
    scored = score(runs, rules=("TALKING",))
    talking = scored.rules["TALKING"]
    assert talking.incidents == len(SPEAKERS["test"])
    assert talking.detected == talking.incidents, [
        r.name for r in runs if r.incidents and not r.alerts
    ]
    assert scored.false_alerts == 0, scored.false_alert_list  # café, and a short remark in it
    assert talking.recall_ci95 is not None and scored.false_alerts_ci95 is not None


def test_the_threshold_is_the_one_with_fewest_false_alerts_then_best_recall() -> None:
    def scored(false_alerts: int, detected: int) -> Score:
        from cli.evaluation import RuleScore

        rule = RuleScore("TALKING", incidents=10, detected=detected)
        return Score({"TALKING": rule}, false_alerts, 1.0, 1.0, {}, 0, 0)

    assert choose_threshold({0.3: scored(2, 10), 0.5: scored(0, 8), 0.6: scored(0, 9)}) == 0.6
    assert choose_threshold({0.4: scored(0, 9), 0.5: scored(0, 9), 0.6: scored(0, 9)}) == 0.5


def test_every_speaker_of_the_suite_is_speech_by_its_spectrum_and_test_opus_is_not() -> None:
    """The suite's admission rule for a speaker's recording: energy where speech is heard."""
    require_data()
    for half in ("development", "test"):
        for speaker, files in SPEAKERS[half].items():
            for path in files:
                share = speech_band_share(load_pcm(DATA / path))
                assert share >= SPEECH_BAND_SHARE, (speaker, path, share)
    # labelled "speech" by the data's manifest: 4 % in the band, 95 % at 100-300 Hz
    assert speech_band_share(load_pcm(DATA / "audio/silero-vad/test.opus")) < SPEECH_BAND_SHARE

"""Confidence intervals against published values (Wilson 1927 / Newcombe 1998; Garwood 1936)."""

from __future__ import annotations

import math

import pytest

from proctoring.stats import poisson_exact, wilson


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:857, table I, method 3 (Wilson, no CC)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # the ends are exact: n of n has no upper error
        (10, 10, 0.7225, 1.0),
        (5, 10, 0.2366, 0.7634),
    ],
)
def test_wilson_matches_the_published_intervals(
    successes: int, trials: int, low: float, high: float
) -> None:
    got = wilson(successes, trials)
    assert got == (pytest.approx(low, abs=1e-4), pytest.approx(high, abs=1e-4))


def test_wilson_of_nothing_measured_is_the_whole_range_and_bad_counts_are_refused() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes <= trials"):
        wilson(3, 2)
    with pytest.raises(ValueError, match="confidence"):
        wilson(1, 2, confidence=1.0)


def test_wilson_narrows_with_more_trials_and_widens_with_more_confidence() -> None:
    few, many = wilson(5, 10), wilson(500, 1000)
    assert many[1] - many[0] < few[1] - few[0]
    ninety, ninety_nine = wilson(5, 10, 0.90), wilson(5, 10, 0.99)
    assert ninety_nine[0] < ninety[0] and ninety[1] < ninety_nine[1]


@pytest.mark.parametrize(
    ("events", "low", "high"),
    [
        # exact Poisson 95 % limits of the mean (Garwood 1936; e.g. Ulm 1990 table)
        (0, 0.0, 3.6889),
        (1, 0.0253, 5.5716),
        (5, 1.6235, 11.6683),
        (10, 4.7954, 18.3904),
        (200, 173.2409, 229.7220),
    ],
)
def test_poisson_exact_matches_the_published_limits(events: int, low: float, high: float) -> None:
    got = poisson_exact(events, 1.0)
    assert got == (pytest.approx(low, abs=1e-3), pytest.approx(high, abs=1e-3))


def test_poisson_rate_divides_by_the_exposure() -> None:
    # 2 false alerts in half an honest student-hour: 4 per hour, and the interval scales
    low, high = poisson_exact(2, 0.5)
    assert (low, high) == (
        pytest.approx(0.2422 / 0.5, abs=1e-3),
        pytest.approx(7.2247 / 0.5, abs=1e-3),
    )
    assert poisson_exact(0, 0.0) == (0.0, math.inf)
    with pytest.raises(ValueError, match="events"):
        poisson_exact(-1, 1.0)

"""Confidence intervals for the rates the project reports (pure functions, no numpy).

- :func:`wilson`: a proportion (recall, precision, a false-match rate): *k* of *n*
  trials. The Wilson score interval stays inside [0, 1] and is not degenerate at
  0 of *n* or *n* of *n*, where the textbook normal interval collapses to a point.
- :func:`poisson_exact`: a count of events over an exposure (false alerts per
  honest student-hour): the exact (Garwood) interval of a Poisson mean, from the
  Poisson tail probabilities, divided by the exposure. At 0 events its upper bound
  is about 3.69 / exposure (95 %): zero false alerts in a short run is no proof of
  none.

Both take the confidence as a two-sided level (0.95 unless told).
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["poisson_exact", "wilson"]


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval (low, high) of ``successes`` of ``trials``.

    ``trials == 0`` gives (0, 1): nothing was measured.
    """
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return (0.0, 1.0)
    z = _z(confidence)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # Exact at the ends: 0 of n has no lower error, n of n no upper one.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return (low, high)


def _poisson_cdf(k: int, mean: float) -> float:
    """P(X <= k) for X ~ Poisson(mean), summed in log space (no overflow for large k)."""
    if mean <= 0:
        return 1.0
    log_mean = math.log(mean)
    terms = [i * log_mean - mean - math.lgamma(i + 1) for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def _solve(target: float, k: int, low: float, high: float) -> float:
    """The mean at which P(X <= k) == target (decreasing in the mean), by bisection."""
    while _poisson_cdf(k, high) > target:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if _poisson_cdf(k, middle) > target:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * max(1.0, high):
            break
    return (low + high) / 2


def poisson_exact(events: int, exposure: float, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Garwood) interval (low, high) of a rate: ``events`` over ``exposure``.

    The low end is the mean whose P(X >= events) is (1 - confidence) / 2, the high end
    the mean whose P(X <= events) is (1 - confidence) / 2; both divided by ``exposure``
    (e.g. honest student-hours). ``exposure == 0`` gives (0, inf): nothing was measured.
    """
    if events < 0:
        raise ValueError(f"events must be >= 0, got {events}")
    if exposure < 0:
        raise ValueError(f"exposure must be >= 0, got {exposure}")
    _z(confidence)
    if exposure == 0:
        return (0.0, math.inf)
    tail = (1 - confidence) / 2
    upper = _solve(tail, events, 0.0, events + 10.0)
    lower = 0.0 if events == 0 else _solve(1 - tail, events - 1, 0.0, events + 10.0)
    return (lower / exposure, upper / exposure)

"""Time windows the browser's and the microphone's rules sum over."""

from __future__ import annotations

__all__ = ["union_ms"]


def union_ms(intervals: list[tuple[int, int]], since: int, until: int) -> int:
    """Milliseconds covered by ``intervals`` inside [since, until], overlaps counted once."""
    total, reach = 0, since
    for start, end in sorted(intervals):
        start, end = max(start, reach), min(end, until)
        if end > start:
            total += end - start
            reach = end
    return total

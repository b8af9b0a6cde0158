"""What a load run replays (:class:`LoadPlan`) and the counts it reports as it goes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from proctoring.errors import ProctoringError
from producer.chunking import Chunk

__all__ = ["LoadError", "LoadPlan", "Mode", "Progress"]

Mode = Literal["full", "events"]


class LoadError(ProctoringError):
    """The load run cannot start."""


@dataclass(frozen=True)
class LoadPlan:
    """What to replay: ``students`` copies of ``chunks``, cycled to ``duration`` seconds."""

    chunks: Sequence[Chunk]
    students: int
    exam_id: str
    student_prefix: str = "student"
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    """Part of every student id: evidence is written once per (exam, student, sequence), so a
    second run of the same exam must not replay the first run's students (their chunks
    would be taken for replaced evidence, CHUNK_REPLACED, and not analysed)."""
    speed: float | None = 1.0
    """1 = real time; None = every chunk at once (as fast as the stack takes them)."""
    duration: float | None = None
    """Seconds of session per student; default: the chunks once."""
    mode: Mode = "full"
    chunk_seconds: float = 5.0
    upload_concurrency: int = 64

    def __post_init__(self) -> None:
        if not self.chunks:
            raise LoadError("the session has no chunks")
        if self.students < 1:
            raise LoadError("students must be at least 1")
        if self.speed is not None and self.speed <= 0:
            raise LoadError("speed must be positive, or None for as fast as possible")

    def student_ids(self) -> list[str]:
        return [f"{self.student_prefix}-{self.run}-{i:05d}" for i in range(self.students)]

    def schedule(self) -> list[tuple[int, float, Chunk]]:
        """One student's (sequence, seconds after its start the chunk is due, chunk).

        A recorder hands a chunk over every ``chunk_seconds`` (the student page's timeslice),
        whatever the chunk holds, and the last one when the session ends (``duration``, or the
        recording's own length when it is replayed once). A replayed recording's short tail
        chunk, cycled into a longer session, is due on the beat like the others: were each
        cycle's tail due at its own end, every student replaying the same recording would hand
        it over early at the same point of its cycle - a burst of twice the rate that real
        sessions, each on its own beat, never make together.
        """
        seconds = self.duration or sum(c.duration for c in self.chunks)
        count = max(1, round(seconds / self.chunk_seconds))
        plan = []
        for sequence in range(count):
            chunk = self.chunks[sequence % len(self.chunks)]
            end = min((sequence + 1) * self.chunk_seconds, seconds)
            plan.append((sequence, 0.0 if self.speed is None else end / self.speed, chunk))
        return plan


@dataclass
class Progress:
    """Counts so far, handed to the progress callback."""

    planned: int = 0
    created: int = 0
    results: int = 0
    alerts: int = 0
    errors: int = 0
    """Uploads that failed and results with ``status = error``."""
    upload_errors: int = 0

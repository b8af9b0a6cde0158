"""A load-test engine: a fixed latency and a fixed answer, no CPU and no cost.

``PROCTOR_ENGINE=fixed`` replaces face analysis by a wait of
``PROCTOR_FIXED_LATENCY`` seconds and answers "one face, the registered
student, looking at the camera". Everything else in the consumer runs as
usual, so a load test measures the pipeline (S3, Kinesis, DynamoDB, SNS,
frame extraction, rules) with an analysis time the operator chooses, without
paying Rekognition or spending CPU on dlib. Never for a real exam: it sees
nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from proctoring.analysis.base import (
    NAIVE,
    FaceDetail,
    FrameAnalysis,
    Identity,
    Plan,
    RegisteredFace,
)

__all__ = ["FixedLatencyEngine"]

_BOX = (100, 80, 160, 160)


class FixedLatencyEngine:
    """Answers every frame after ``latency`` seconds with one matching, attentive face."""

    name = "fixed"

    def __init__(self, latency: float = 0.1) -> None:
        if latency < 0:
            raise ValueError("latency must not be negative")
        self.latency = latency

    @property
    def objects_available(self) -> bool:
        return False

    async def register(
        self, exam_id: str, student_id: str, photo: bytes, frames: Sequence[bytes] = ()
    ) -> RegisteredFace:
        return RegisteredFace(box=_BOX, frames_enrolled=len(frames))

    async def describe(self, jpeg: bytes) -> FrameAnalysis | None:
        return None  # no local view: the schedule starts unseeded

    async def analyse(
        self, exam_id: str, student_id: str, jpeg: bytes, plan: Plan = NAIVE
    ) -> FrameAnalysis:
        await asyncio.sleep(self.latency)  # the analysis time being simulated
        face = FaceDetail(box=_BOX, confidence=99.0, yaw=0.0, pitch=0.0, gaze="center")
        identity: Identity = "match" if plan.identity != "no" else "unchecked"
        return FrameAnalysis(
            faces=(face,),
            identity=identity,
            width=640,
            height=480,
            distance=0.3 if identity == "match" else None,
            objects_status="unavailable" if plan.objects else "skipped",
            calls=plan.calls(1, identity == "match", plan.confirm == "always"),
            signature=((_BOX, False, True),),
        )

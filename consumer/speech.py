"""The speech path of the processor: a chunk's audio heard in the pool, judged in order.

With the exam's policy recording the microphone (``audio: true``), the process
pool job that extracts a chunk's frame also runs :func:`hear` on the same
bytes (``proctoring.speech``: PyAV decodes the audio track, Silero VAD finds
the speech). Per student, in sequence order, :class:`StudentSpeech` then

1. puts the speech on the chunk's result row (``speech_s``, ``speech``: the
   (start, end) seconds, ``audio_dbfs``);
2. judges TALKING (``proctoring.rules.speech``) with the exam's policy relaxed
   by the student's accommodations, the state kept on the session item
   (``speech``, which the risk score reads beside the video's and the
   browser's incidents);
3. raises each incident as an alert (deterministic id) whose evidence is the
   chunk itself, the audio clip, with the seconds that were speech.

A chunk without an audio track is untouched (None: nothing to judge). An
audio track that cannot be decoded is bad input: an errors row
(``stage = audio``, ``reason = audio_<reason>``), the ``ChunkErrors`` metric
and a log line, while the chunk's video is analysed as usual.
"""

from __future__ import annotations

from typing import Any

import structlog

from consumer.outlet import Outlet
from proctoring.events import ChunkEvent
from proctoring.metric_names import MetricName
from proctoring.rules import Policy
from proctoring.rules.speech import SpeechFinding, SpeechState, judge
from proctoring.speech import Speech, SpeechError, chunk_speech

__all__ = ["Heard", "StudentSpeech", "hear", "speech_fields"]

_log = structlog.get_logger(__name__)
Heard = Speech | SpeechError | None
"""What the pool heard in a chunk: its speech, why its audio could not be read, or no audio."""


def hear(data: bytes, *, threshold: float = 0.5) -> Heard:
    """Process-pool job: the chunk's speech; a bad audio track comes back as its error (the
    frame of the same chunk is still analysed)."""
    try:
        return chunk_speech(data, threshold=threshold)
    except SpeechError as exc:
        return exc


def speech_fields(heard: Speech) -> dict[str, Any]:
    """The result row's speech: seconds, segments and the track's loudest level."""
    return {
        "speech_s": heard.seconds,
        "speech": [list(segment) for segment in heard.segments],
        "audio_dbfs": None if heard.level_dbfs == float("-inf") else heard.level_dbfs,
    }


class StudentSpeech:
    """One student's speech in one batch; the state lives on the session item."""

    def __init__(
        self,
        *,
        state: SpeechState,
        policy: Policy,
        outlet: Outlet,
    ) -> None:
        self.state = state
        self._policy = policy
        self._outlet = outlet

    async def judge(
        self, event: ChunkEvent, heard: Heard, *, sequence_number: str, evidence: dict[str, Any]
    ) -> int:
        """Judge one chunk's speech; the number of alerts raised (0 or 1). ``evidence``: the
        chunk's hash, version and frame, as the result row has them."""
        if heard is None:
            return 0
        if isinstance(heard, SpeechError):
            await self._outlet.record_error(
                exam_id=event.exam_id,
                error_id=f"audio#{event.student_id}#{event.source}#{event.sequence:06d}",
                stage="audio",
                reason=f"audio_{heard.reason}",
                message=f"the chunk's audio was not analysed (its video was): {heard}",
                student_id=event.student_id,
                chunk_key=event.key,
                sequence_number=sequence_number,
            )
            return 0
        self._outlet.metrics.add(MetricName.SpeechSeconds, heard.seconds, "Seconds")
        self.state, found = judge(
            self.state,
            sequence=event.sequence,
            captured_ms=int(event.captured_at.timestamp() * 1000),
            duration_s=heard.duration,
            segments=heard.segments,
            policy=self._policy,
        )
        if found is None:
            return 0
        return int(await self._alert(event, heard, found, evidence))

    async def _alert(
        self, event: ChunkEvent, heard: Speech, found: SpeechFinding, evidence: dict[str, Any]
    ) -> bool:
        finding = found.finding
        what = (
            f"{found.speech_s} s of speech in {found.window_s} s "
            f"(allowed {self._policy.talking_seconds:g} s)"
        )
        alert = self._outlet.alert(
            event.exam_id,
            event.student_id,
            event.source,
            finding,
            chunk_key=event.key,
            **evidence,
            speech_s=found.speech_s,
            window_s=found.window_s,
            evidence={
                "message": what,
                "audio": "the chunk (chunk_key) is the clip",
                "speech": [list(segment) for segment in heard.segments],
                "speech_in_chunk_s": heard.seconds,
            },
        )
        alert = {k: v for k, v in alert.items() if v is not None}
        return await self._outlet.raise_alert(alert, what=what)

"""The base of every exception this project raises on purpose.

Each module defines the few errors it needs under this base and draws its
part of the tree in its docstring::

    ProctoringError
     ├── ReasonError                     any error that carries a stable ``reason`` code:
     │                                   InvalidEvent, FrameError, ImageError,
     │                                   RegistrationError, SpeechError, the API's ApiError
     ├── events.InvalidEvent             a record or key that is not a chunk event
     ├── frames.FrameError               a chunk that yields no usable frame
     ├── analysis.faces.ImageError       bytes that are not a usable JPEG/PNG
     ├── analysis.faces.RegistrationError a registration photo that cannot be used
     ├── analysis.base.AnalysisError     an engine could not analyse a frame
     │    └── analysis.base.Throttled    Rekognition kept throttling past the backoff
     ├── analysis.objects.DetectorError  the configured ONNX object model cannot be used
     ├── rules.policy.PolicyError        a stored exam policy or accommodation is invalid
     ├── cli.eval_suite.SuiteError       the evaluation suite is missing or malformed
     ├── cli.eval_run.EvalFailed         an evaluation pass did not finish in time
     ├── storage.StorageError            a table call that failed after its retries
     │    └── storage.StaleState         the session state moved under us
     ├── producer.chunking.ChunkingError a recording that cannot be cut into chunks
     ├── producer.scenario.ScenarioError a scenario file that is wrong
     └── infrastructure.emulator.StackError  the local stack could not start
"""

from __future__ import annotations

from typing import Any

__all__ = ["ProctoringError", "ReasonError"]


class ProctoringError(Exception):
    """Base of the project's exceptions."""


class ReasonError(ProctoringError):
    """An error with a short stable ``reason`` code (for metrics, error rows and API bodies)
    beside its message (for people).

    ``reason`` defaults to the class's :attr:`default_reason`. The error keeps its reason
    when pickled: the default pickling of exceptions loses keyword-only arguments, and
    these cross the process pool's boundary (frame extraction, face analysis).
    """

    default_reason = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = self.default_reason if reason is None else reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), str(self), self.reason))


def _rebuild(cls: type[ReasonError], message: str, reason: str) -> ReasonError:
    return cls(message, reason=reason)

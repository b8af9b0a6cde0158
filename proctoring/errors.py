"""The base of every exception this project raises on purpose.

Each module defines the few errors it needs under this base and draws its
part of the tree in its docstring::

    ProctoringError
     ├── events.InvalidEvent             a record or key that is not a chunk event
     ├── frames.FrameError               a chunk that yields no usable frame
     ├── analysis.faces.ImageError       bytes that are not a usable JPEG/PNG
     ├── analysis.faces.RegistrationError a registration photo that cannot be used
     ├── analysis.base.AnalysisError     an engine could not analyse a frame
     │    └── analysis.base.Throttled    Rekognition kept throttling past the backoff
     ├── analysis.objects.DetectorError  the configured ONNX object model cannot be used
     ├── rules.policy.PolicyError        a stored exam policy or accommodation is invalid
     ├── cli.evaluation.SuiteError       the evaluation suite is missing or malformed
     ├── cli.eval_run.EvalFailed         an evaluation pass did not finish in time
     ├── storage.StorageError            a table call that failed after its retries
     │    └── storage.StaleState         the session state moved under us
     ├── producer.chunking.ChunkingError a recording that cannot be cut into chunks
     ├── producer.scenario.ScenarioError a scenario file that is wrong
     └── infrastructure.emulator.StackError  the local stack could not start
"""

from __future__ import annotations

__all__ = ["ProctoringError"]


class ProctoringError(Exception):
    """Base of the project's exceptions."""

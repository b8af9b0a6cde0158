"""The base of every exception this project raises on purpose.

Each module defines the few errors it needs under this base and draws its
part of the tree in its docstring::

    ProctoringError
     ├── events.InvalidEvent             a record or key that is not a chunk event
     ├── frames.FrameError               a chunk that yields no usable frame
     ├── analysis.faces.ImageError       bytes that are not a usable JPEG/PNG
     ├── analysis.faces.RegistrationError a registration photo that cannot be used
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

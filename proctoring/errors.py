"""The base of every exception this project raises on purpose.

Each module defines the few errors it needs under this base and draws its
part of the tree in its docstring::

    ProctoringError
     ├── events.InvalidEvent        a record or key that is not a chunk event
     ├── frames.FrameError          a chunk that yields no usable frame
     ├── analysis.RegistrationError a registration photo that cannot be used
     ├── storage.StorageError       an AWS call that failed after its retries
     └── local.StackError           the local stack could not start
"""

from __future__ import annotations

__all__ = ["ProctoringError"]


class ProctoringError(Exception):
    """Base of the project's exceptions."""

"""moto's server: S3 bodies on disk, not in its memory.

moto keeps every stored body in a ``SpooledTemporaryFile`` of ~5 MB, so the 200-student
soak's S3/SQS emulator held every ~600 kB chunk in memory (13.8 GB by minute 18). Here bodies
above :data:`SPILL_ABOVE` bytes live in files of their own (:func:`bodies_on_disk`, run by
:mod:`infrastructure.moto_server`, which owns the directory).
"""

from __future__ import annotations

import functools
import os
import tempfile
import types
from pathlib import Path
from typing import Any

__all__ = ["SPILL_ABOVE", "SPILL_PREFIX", "bodies_on_disk"]


SPILL_ABOVE = 64 * 1024
"""Bytes above which a stored object's body goes to a file (a chunk is ~600 kB; moto's own
default, ``MOTO_S3_DEFAULT_KEY_BUFFER_SIZE``, is ~5 MB, which an environment setting of that
name still overrides)."""

SPILL_PREFIX = "proctor-moto-s3-"
"""The name of each emulator's body directory starts so, then its process id."""


def bodies_on_disk(directory: Path) -> None:
    """Keep S3 objects' bodies above :data:`SPILL_ABOVE` bytes in files of their own in
    ``directory``, not in the emulator's memory: moto keeps every body it stores in a
    ``SpooledTemporaryFile`` of ~5 MB, so the 200-student soak's emulator held every ~600 kB
    chunk in memory (13.8 GB by minute 18). A smaller spooled buffer would spill to unnamed
    temporary files, but each keeps a descriptor open (one per chunk, against a limit of a
    few tens of thousands); here a body's file is opened only to be read or written. The
    caller removes ``directory`` (``infrastructure.moto_server`` does when it stops)."""
    from moto.s3 import models

    os.environ.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(SPILL_ABOVE))
    models.tempfile = types.SimpleNamespace(  # type: ignore[assignment]
        SpooledTemporaryFile=functools.partial(_Body, directory)
    )


class _Body:
    """A stored object's bytes, as moto's keys use their buffer (seek, read, write, truncate,
    close): in memory up to ``max_size``, beyond it in a file of its own in ``directory``."""

    def __init__(self, directory: Path, max_size: int = 0, *_: Any, **__: Any) -> None:
        self._directory, self._max = directory, max_size
        self._memory: bytearray | None = bytearray()
        self._path: Path | None = None
        self._at = 0

    def seek(self, offset: int, whence: int = 0) -> int:
        end = len(self._memory) if self._memory is not None else self._size()
        self._at = {0: offset, 1: self._at + offset, 2: end + offset}[whence]
        return self._at

    def tell(self) -> int:
        return self._at

    def _size(self) -> int:
        return self._path.stat().st_size if self._path is not None else 0

    def read(self, size: int = -1) -> bytes:
        if self._memory is not None:
            end = len(self._memory) if size is None or size < 0 else self._at + size
            data = bytes(self._memory[self._at : end])
        elif self._path is not None:
            with self._path.open("rb") as file:
                file.seek(self._at)
                data = file.read(-1 if size is None else size)
        else:
            raise ValueError("I/O operation on closed file.")
        self._at += len(data)
        return data

    def write(self, data: bytes) -> int:
        if self._memory is not None:
            self._memory[self._at : self._at + len(data)] = data
            self._at += len(data)
            if len(self._memory) > self._max:  # to a file of its own
                self._path = self._new_path()
                self._path.write_bytes(self._memory)
                self._memory = None
        elif self._path is not None:
            with self._path.open("r+b") as file:
                file.seek(self._at)
                file.write(data)
            self._at += len(data)
        else:
            raise ValueError("I/O operation on closed file.")
        return len(data)

    def truncate(self, size: int | None = None) -> int:
        size = self._at if size is None else size
        if self._memory is not None:
            del self._memory[size:]
        elif self._path is not None:
            with self._path.open("r+b") as file:
                file.truncate(size)
        return size

    def close(self) -> None:
        if self._path is not None:
            self._path.unlink(missing_ok=True)
        self._memory = self._path = None

    def _new_path(self) -> Path:
        handle, name = tempfile.mkstemp(dir=self._directory, suffix=".body")
        os.close(handle)
        return Path(name)

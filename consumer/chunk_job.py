"""The process-pool job of a chunk: its GET, its hash, its frame, from one read of the bytes.

``read_chunk`` runs in a pool worker (``consumer.frame_stage`` sends it): it GETs the chunk
with the URL the event loop signed (``consumer.chunk_get.fetch``) and, unless the bytes are
another object than the sequence's row was written for, extracts the frame the rules need,
its thumbnail and, when asked, the speech in the audio (``frame_and_thumbnail``). Nothing is
raised for the chunk: what the GET or the extraction ended with is in the result (``Read``),
with the HTTP requests sent, which the frame stage reports as the S3 client's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from consumer.chunk_get import ChunkGet, Failed, fetch
from consumer.speech import Heard, hear
from proctoring.frames import Frame, FrameError, extract_frame

__all__ = ["Read", "frame_and_thumbnail", "read_chunk"]


def frame_and_thumbnail(
    data: bytes, *, max_pixels: int, position: Literal["first", "middle"], speech: bool = False
) -> tuple[Frame, bytes, Heard]:
    """Process-pool job: the frame to analyse, its 32x32 grey thumbnail (for the schedule,
    scaled from the decoded frame: ``Frame.thumb``) and, when asked, the speech in the
    chunk's audio."""
    frame = extract_frame(data, max_pixels=max_pixels, position=position)
    return frame, frame.thumb, hear(data) if speech else None


@dataclass(frozen=True)
class Read:
    """What a ``read_chunk`` job found: the GET's outcome and, when extracted, the frame."""

    requests: int  # HTTP requests the GET sent (a retry counts)
    failed: Failed | None = None
    digest: str | None = None  # SHA-256 of the chunk's bytes
    version: str | None = None  # the S3 version read
    frame: Frame | None = None
    heard: Heard = None
    error: FrameError | None = None  # the bytes yield no frame


def read_chunk(
    get: ChunkGet,
    *,
    max_pixels: int,
    position: Literal["first", "middle"],
    speech: bool = False,
    extract: bool = True,
    same_as: str | None = None,
) -> Read:
    """Process-pool job: GET the chunk (``consumer.chunk_get.fetch``) and extract its frame
    (``frame_and_thumbnail``) from the bytes, unless ``extract`` is False or the bytes' SHA-256
    is not ``same_as`` (another object than the sequence's row was written for). Nothing is
    raised for the chunk: a failed GET or a chunk without a frame comes back in the result."""
    got = fetch(get)
    if isinstance(got, Failed):
        return Read(got.requests, failed=got)
    read = Read(got.requests, digest=got.digest, version=got.version)
    if not extract or (same_as is not None and got.digest != same_as):
        return read
    try:
        frame, _, heard = frame_and_thumbnail(
            got.data, max_pixels=max_pixels, position=position, speech=speech
        )
    except FrameError as exc:
        return replace(read, error=exc)
    return replace(read, frame=frame, heard=heard)

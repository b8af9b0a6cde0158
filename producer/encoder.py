"""One self-contained chunk, and the encoder that makes one (shared by ``producer.chunking``,
which cuts recordings, and ``producer.rendering``, which renders scenarios).

A chunk is a complete MP4 file that decodes on its own: its first frame is a keyframe and its
timestamps start at 0. ``ChunkEncoder`` gives each chunk its own libx264 encoder (preset
ultrafast, yuv420p) and, with ``keyframe_at``, a second keyframe at the chunk's middle: the
frame the consumer analyses, which it then decodes alone (``proctoring.frames``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction

import av
from av.video.frame import PictureType, VideoFrame

from proctoring.errors import ProctoringError

__all__ = ["FORMAT", "Chunk", "ChunkEncoder", "ChunkingError"]

FORMAT = "mp4"
_X264_OPTIONS = {"preset": "ultrafast"}


class ChunkingError(ProctoringError):
    """A recording that cannot be cut into chunks, or a chunk that cannot be written."""


@dataclass(frozen=True)
class Chunk:
    """One self-contained chunk of a session: a complete MP4 file and where it sits."""

    index: int
    """0, 1, 2 ... in upload order."""
    data: bytes = field(repr=False)
    """A complete MP4 file; decodes alone and starts with a keyframe."""
    start: float
    """Seconds into the session where this chunk starts."""
    duration: float
    """Seconds of video in the chunk."""
    remuxed: bool
    """True when the packets were copied, False when the chunk was re-encoded."""


class ChunkEncoder:
    """Encodes one chunk with its own libx264 encoder, so the chunk starts with a keyframe.

    Add frames with timestamps in ``time_base`` units counted from the chunk's start, then call
    ``finish`` for the ``Chunk``. ``rotation`` (degrees counter-clockwise, as
    ``VideoFrame.rotation`` reads it) is written as the stream's display matrix. Odd sizes are
    rounded down to even ones, as yuv420p requires. With ``keyframe_at`` (a timestamp, in
    ``time_base`` units from the chunk's start) the first frame at or after it is encoded as a
    keyframe too: the middle of the chunk, where the consumer takes its frame.
    """

    def __init__(
        self,
        *,
        index: int,
        start: float,
        width: int,
        height: int,
        rate: Fraction,
        time_base: Fraction,
        rotation: int = 0,
        keyframe_at: int | None = None,
    ) -> None:
        self._index = index
        self._keyframe_at = keyframe_at
        self._start = start
        self._time_base = time_base
        self._end = 0
        self._frames = 0
        self._buffer = io.BytesIO()
        try:
            self._container = av.open(self._buffer, "w", format=FORMAT)
            stream = self._container.add_stream("libx264", rate=rate, options=dict(_X264_OPTIONS))
            stream.width = width - width % 2
            stream.height = height - height % 2
            stream.pix_fmt = "yuv420p"
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
            if rotation:
                stream.set_display_rotation(rotation)
        except av.FFmpegError as exc:
            raise ChunkingError(f"chunk {index}: cannot start the encoder: {exc}") from exc
        self._stream = stream

    def add(self, frame: VideoFrame, *, pts: int, duration: int) -> None:
        """Encode ``frame`` at ``pts`` for ``duration`` (both in ``time_base`` units)."""
        frame.pts = pts
        frame.duration = duration
        frame.time_base = self._time_base
        # A decoded I frame would otherwise force an extra keyframe anywhere in the chunk: only
        # the one asked for (``keyframe_at``) is forced.
        if self._keyframe_at is not None and pts >= self._keyframe_at:
            frame.pict_type = PictureType.I
            self._keyframe_at = None
        else:
            frame.pict_type = PictureType.NONE
        try:
            self._container.mux(self._stream.encode(frame))
        except av.FFmpegError as exc:
            raise ChunkingError(f"chunk {self._index}: cannot encode a frame: {exc}") from exc
        self._end = max(self._end, pts + duration)
        self._frames += 1

    def finish(self, duration: float | None = None) -> Chunk:
        """Flush the encoder and close the file; ``duration`` defaults to the frames' extent."""
        if not self._frames:
            raise ChunkingError(f"chunk {self._index}: no frames to encode")
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
        except av.FFmpegError as exc:
            raise ChunkingError(f"chunk {self._index}: cannot finish the file: {exc}") from exc
        if duration is None:
            duration = float(self._end * self._time_base)
        return Chunk(
            index=self._index,
            data=self._buffer.getvalue(),
            start=self._start,
            duration=duration,
            remuxed=False,
        )

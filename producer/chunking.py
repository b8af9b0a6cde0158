"""Cut a recording into self-contained video chunks, the way a student's browser uploads them.

Every chunk is a complete MP4 file that decodes on its own: its first frame is a keyframe and
its timestamps start at 0. Chunk boundaries fall every ``seconds`` (5 by default) on the
recording's own timeline, counted from its first video frame; ``Chunk.start`` is where the
chunk starts on that timeline. A trailing chunk shorter than ``MIN_CHUNK_SECONDS`` is dropped.

A chunk is made one of two ways:

- **remux** (``Chunk.remuxed`` is true): the recording has a keyframe at, or within one frame
  of, every chunk boundary, so its packets are copied unchanged. Lossless and fast; phone
  recordings (a keyframe every 1.25 s) take this path. The chunk then starts exactly at that
  keyframe, so starts like 9.998 s instead of 10 s are normal.
- **re-encode**: otherwise each chunk gets a fresh libx264 encoder (preset ultrafast, yuv420p),
  so it starts with a keyframe; the source frame timestamps are kept, and so the frame rate.
  A second keyframe is forced at the chunk's middle (the first frame at or after half its
  span), the frame the consumer analyses: it decodes that one frame instead of every frame
  from the chunk's start (``proctoring.frames``, docs/benchmarks.md).

Either way the display rotation of the source travels with the chunk (``add_stream_from_template``
copies the display matrix in a remux, checked with PyAV 18; a re-encode sets it with
``set_display_rotation``), so a phone recording still decodes sideways with
``frame.rotation == -90``, exactly as the phone's own upload would. Audio is dropped.

``Chunk``, ``ChunkEncoder`` (one chunk, one encoder, shared with ``producer.rendering``) and
``ChunkingError`` live in ``producer.encoder``; they are imported from here too.

Errors::

    ProctoringError
     └── ChunkingError     the recording cannot be read, has no video, is too short,
                           or a chunk cannot be decoded or encoded
"""

from __future__ import annotations

import io
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from statistics import median

import av
from av.container import InputContainer, OutputContainer
from av.video.stream import VideoStream

from producer.encoder import FORMAT, Chunk, ChunkEncoder, ChunkingError

__all__ = [
    "MIN_CHUNK_SECONDS",
    "Chunk",
    "ChunkEncoder",
    "ChunkingError",
    "chunk_recording",
    "recording_duration",
]

MIN_CHUNK_SECONDS = 0.2
"""A trailing chunk shorter than this is dropped rather than uploaded."""


def chunk_recording(path: Path, *, seconds: float = 5.0) -> Iterator[Chunk]:
    """Split a recording into self-contained chunks of ``seconds`` (the last may be shorter).

    Packets are copied when there is a keyframe within one frame of every chunk start, and
    every chunk is re-encoded otherwise (see the module docstring). The recording's packets
    are read up front, so an unreadable file, one without video or with less than
    ``MIN_CHUNK_SECONDS`` of it raises ``ChunkingError`` here, not on the first ``next``;
    chunks are then made one at a time as the iterator is consumed.
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    probe = _probe(path)
    bounds = _boundaries(probe, seconds)
    snapped = [_nearest_keyframe(probe, b) for b in bounds]
    spans = _spans(
        probe,
        [_frame_at(probe, b) if k is None else k for b, k in zip(bounds, snapped, strict=True)],
    )
    if all(_is_keyframe(probe, span.start) for span in spans):
        return _remux(path, probe, spans)
    return _reencode(path, probe, _spans(probe, [_frame_at(probe, b) for b in bounds]))


def recording_duration(path: Path) -> float:
    """Seconds of video in a recording, from its first frame to the end of its last."""
    return _probe(path).duration


@dataclass(frozen=True)
class _Probe:
    """What the packets of a recording's first video stream say, without decoding them all."""

    time_base: Fraction
    pts: Sequence[int]  # every frame's presentation timestamp, sorted
    keyframes: Sequence[int]  # presentation timestamps of keyframes, sorted
    end: int  # just after the last frame
    frame_ticks: int  # one frame's duration
    rate: Fraction
    width: int
    height: int
    rotation: int

    @property
    def first(self) -> int:
        return self.pts[0]

    @property
    def duration(self) -> float:
        return self.seconds(self.end - self.first)

    def seconds(self, ticks: int) -> float:
        return float(ticks * self.time_base)


@dataclass(frozen=True)
class _Span:
    index: int
    start: int
    end: int


def _open(path: Path) -> InputContainer:
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise ChunkingError(f"{path}: cannot open the recording: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise ChunkingError(f"{path}: the file has no video stream")
    return container


def _probe(path: Path) -> _Probe:
    with _open(path) as container:
        stream = container.streams.video[0]
        time_base = stream.time_base
        if time_base is None:
            raise ChunkingError(f"{path}: the video stream has no time base")
        pts: list[int] = []
        keyframes: set[int] = set()
        durations: dict[int, int] = {}
        rotation: int | None = None
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                pts.append(packet.pts)
                durations[packet.pts] = packet.duration or 0
                if packet.is_keyframe:
                    keyframes.add(packet.pts)
                if rotation is None:
                    rotation = next((f.rotation for f in stream.decode(packet)), None)
        except av.FFmpegError as exc:
            raise ChunkingError(f"{path}: cannot read the recording: {exc}") from exc
        if rotation is None or len(pts) < 2:
            raise ChunkingError(f"{path}: the video stream has fewer than 2 decodable frames")
        pts.sort()
        frame_ticks = max(1, round(median(b - a for a, b in pairwise(pts))))
        end = max(p + (durations[p] or frame_ticks) for p in pts)
        rate = stream.average_rate or Fraction(1) / (frame_ticks * time_base)
        probe = _Probe(
            time_base=time_base,
            pts=pts,
            keyframes=sorted(keyframes),
            end=end,
            frame_ticks=frame_ticks,
            rate=rate,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            rotation=rotation,
        )
    if probe.duration < MIN_CHUNK_SECONDS:
        raise ChunkingError(f"{path}: only {probe.duration:.3f} s of video")
    return probe


def _boundaries(probe: _Probe, seconds: float) -> list[int]:
    """Nominal chunk boundaries after the first, in timestamps, up to the end."""
    step = seconds / float(probe.time_base)
    bounds = []
    k = 1
    while (bound := probe.first + round(k * step)) < probe.end:
        bounds.append(bound)
        k += 1
    return bounds


def _nearest_keyframe(probe: _Probe, bound: int) -> int | None:
    """The keyframe within one frame of ``bound``, if there is one."""
    i = bisect_left(probe.keyframes, bound)
    near = [
        k for k in probe.keyframes[max(0, i - 1) : i + 1] if abs(k - bound) <= probe.frame_ticks
    ]
    return min(near, key=lambda k: abs(k - bound)) if near else None


def _is_keyframe(probe: _Probe, pts: int) -> bool:
    i = bisect_left(probe.keyframes, pts)
    return i < len(probe.keyframes) and probe.keyframes[i] == pts


def _frame_at(probe: _Probe, bound: int) -> int:
    """The first frame at ``bound`` (within half a frame), or the end of the video."""
    i = bisect_left(probe.pts, bound - probe.frame_ticks // 2)
    return probe.pts[i] if i < len(probe.pts) else probe.end


def _spans(probe: _Probe, cuts: list[int]) -> list[_Span]:
    edges = [(s, e) for s, e in zip([probe.first, *cuts], [*cuts, probe.end], strict=True) if e > s]
    if len(edges) > 1 and probe.seconds(edges[-1][1] - edges[-1][0]) < MIN_CHUNK_SECONDS:
        edges.pop()
    return [_Span(i, s, e) for i, (s, e) in enumerate(edges)]


def _remux(path: Path, probe: _Probe, spans: list[_Span]) -> Iterator[Chunk]:
    with _open(path) as container:
        stream = container.streams.video[0]
        current = -1
        output: OutputContainer | None = None
        buffer = io.BytesIO()
        out_stream: VideoStream | None = None
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                following = current + 1
                if following < len(spans) and packet.pts == spans[following].start:
                    if output is not None:
                        output.close()
                        yield _remuxed_chunk(probe, spans[current], buffer)
                    current = following
                    buffer = io.BytesIO()
                    output = av.open(buffer, "w", format=FORMAT)
                    out_stream = output.add_stream_from_template(stream)
                if output is None or out_stream is None or packet.pts >= spans[current].end:
                    continue  # before the first keyframe, or in a dropped tail
                packet.pts -= spans[current].start
                if packet.dts is not None:
                    packet.dts -= spans[current].start
                packet.stream = out_stream
                output.mux(packet)
            if output is not None:
                output.close()
                yield _remuxed_chunk(probe, spans[current], buffer)
        except av.FFmpegError as exc:
            raise ChunkingError(f"{path}: cannot remux chunk {current}: {exc}") from exc


def _remuxed_chunk(probe: _Probe, span: _Span, buffer: io.BytesIO) -> Chunk:
    return Chunk(
        index=span.index,
        data=buffer.getvalue(),
        start=probe.seconds(span.start - probe.first),
        duration=probe.seconds(span.end - span.start),
        remuxed=True,
    )


def _reencode(path: Path, probe: _Probe, spans: list[_Span]) -> Iterator[Chunk]:
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        current = -1
        encoder: ChunkEncoder | None = None
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                while current + 1 < len(spans) and frame.pts >= spans[current + 1].start:
                    if encoder is not None:
                        yield encoder.finish(_span_seconds(probe, spans[current]))
                    current += 1
                    encoder = ChunkEncoder(
                        index=current,
                        start=probe.seconds(spans[current].start - probe.first),
                        width=probe.width,
                        height=probe.height,
                        rate=probe.rate,
                        time_base=probe.time_base,
                        rotation=probe.rotation,
                        keyframe_at=_middle(spans[current]),
                    )
                if encoder is None or frame.pts >= spans[current].end:
                    continue  # before the first frame we know of, or in a dropped tail
                duration = frame.duration or probe.frame_ticks
                encoder.add(frame, pts=frame.pts - spans[current].start, duration=duration)
        except av.FFmpegError as exc:
            raise ChunkingError(f"{path}: cannot decode for chunk {current}: {exc}") from exc
        if encoder is not None:
            yield encoder.finish(_span_seconds(probe, spans[current]))


def _middle(span: _Span) -> int:
    """Half a span, rounded up: in the chunk's timestamps, where its middle keyframe goes."""
    return -(-(span.end - span.start) // 2)


def _span_seconds(probe: _Probe, span: _Span) -> float:
    return probe.seconds(span.end - span.start)

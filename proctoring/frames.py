"""Frame extraction: one upright JPEG from a self-contained video chunk.

Over 400 lines on purpose: this is the one place a student's bytes meet FFmpeg. Which
demuxers and decoders may see them, the limits checked before a packet is decoded and the
decoding those checks guard are reviewed together; split, a reader checking that no upload
reaches an unlisted decoder would need two files open.

A chunk is the bytes of a short MP4, WebM or MKV recording (typically 5 s).
:func:`extract_frame` decodes one video frame (the keyframe the chunk starts
on, or the middle frame: from the keyframe at the middle when there is one),
applies the display rotation that phone recordings carry,
and encodes the upright image as JPEG. It is a plain top-level function with
picklable arguments and result, meant to run in a process-pool worker.

Only the MP4/QuickTime and Matroska/WebM demuxers are allowed, so a JPEG, a
playlist or any other format FFmpeg could probe is refused before parsing.
Only the video codecs a recorder produces are decoded (H.264 and HEVC from
phones, cameras and the Chime media pipeline; VP8, VP9 and AV1 from a
browser's MediaRecorder): an image codec (MJPEG, PNG, JPEG 2000), raw video
or any other of FFmpeg's hundreds of decoders in a valid container is
refused before a packet reaches it, which keeps the decoders exposed to
uploads to the few the service needs.
The frame size is checked against ``max_pixels`` from the stream parameters
before anything is decoded, and the decoder refuses larger frames on its own.

Errors::

    ProctoringError
     └── FrameError        a chunk that yields no usable frame; ``reason`` is one of
                           empty            0 bytes
                           not_video        not an MP4/WebM/MKV, or its frame cannot become RGB
                           no_video_stream  a valid container without a video stream
                           unsupported_codec  a video stream in a codec no recorder produces
                                            (MJPEG, PNG, raw video, ...) or FFmpeg does not know
                           truncated        the container is cut or corrupt, no frame decodes
                           too_large        width * height above ``max_pixels`` (not decoded)
                           too_long         container duration above ``max_seconds``
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from typing import Literal

import av
import av.error
import numpy as np
from av.container import InputContainer
from av.packet import Packet
from av.stream import Disposition
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream
from PIL import Image

from proctoring.errors import ReasonError

__all__ = [
    "AV_ERRORS",
    "NEAR_MIDDLE_SECONDS",
    "THUMB_SIDE",
    "Frame",
    "FrameError",
    "extract_frame",
    "open_chunk",
]

# FFmpeg demuxer names: QuickTime/MP4 and Matroska/WebM, nothing else is probed.
_FORMAT_WHITELIST = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm"
# Top-level ISO BMFF boxes a (fragmented) MP4 starts with, and the EBML magic.
_MP4_FIRST_BOXES = frozenset({b"ftyp", b"styp", b"moov", b"moof", b"mdat", b"free", b"wide"})
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
# What PyAV raises for bad input: FFmpeg errors, and ValueError / OSError / EOFError for
# malformed metadata or streams it cannot represent.
AV_ERRORS = (av.FFmpegError, ValueError, OSError, EOFError)
# FFmpeg codec names (not decoder names: AV1 is decoded by libdav1d) a recorder produces.
_VIDEO_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1"})
# The decoders FFmpeg may open while probing the container (avformat's codec whitelist):
# the native ones for those codecs, libvpx's and libdav1d. No other decoder sees the bytes.
_DECODER_WHITELIST = "h264,hevc,vp8,vp9,av1,libvpx,libvpx-vp9,libdav1d"
# One colour converter per process, kept across chunks: a frame's own converter builds a new
# swscale context (with a thread pool) for every frame, ~0.5 ms of a ~5 ms extraction.
_TO_RGB = VideoReformatter()
# And one for the thumbnail: the decoded frame scaled down to 32x32 grey (area average).
_TO_GREY = VideoReformatter()
NEAR_MIDDLE_SECONDS = 0.5
"""A keyframe this close before a chunk's middle stands for the middle frame: the frames
after it, decoded only to reach the exact middle, cost a decode each (a recording's 0.33 s
last chunk took 5 from its start, a 0.5 s one 7) for a moment at most half a second away,
in a 5 s chunk that one frame stands for anyway."""
THUMB_SIDE = 32
"""The side of :attr:`Frame.thumb`: what ``likeness.frame_difference`` compares."""
_TRANSPOSE = {
    1: Image.Transpose.ROTATE_90,
    2: Image.Transpose.ROTATE_180,
    3: Image.Transpose.ROTATE_270,
}


class FrameError(ReasonError):
    """A chunk that yields no usable frame. ``.reason`` is a short stable code."""


@dataclass(frozen=True)
class Frame:
    """One upright frame of a chunk."""

    jpeg: bytes
    """The upright image, JPEG encoded."""
    width: int
    """Width of the upright image."""
    height: int
    """Height of the upright image."""
    rotation: int
    """Counterclockwise rotation applied to the decoded image, degrees: 0, 90, 180 or 270
    (a phone's ``rotate=-90`` display matrix gives 270)."""
    time: float
    """Seconds from the start of the chunk to this frame."""
    decoded: int = 1
    """Frames the decoder output to get this one: 1 when the frame is a keyframe reached
    directly (the cost of an extraction is mostly this count times one frame's decode)."""
    thumb: bytes = b""
    """The upright image as 32x32 grey levels, row by row (1,024 bytes): what the schedule
    compares from chunk to chunk (``likeness.frame_difference``). Scaled from the decoded
    frame (an area average), not from the JPEG: decoding the JPEG again cost ~0.7 ms."""


@dataclass
class _Decoded:
    """Frames decoded so far for one extraction."""

    count: int = 0


def open_chunk(
    data: bytes, *, decoders: str, options: dict[str, str] | None = None, probe: bool = True
) -> InputContainer:
    """A chunk's container as PyAV opens it for the consumer: only the QuickTime/MP4 and
    Matroska/WebM demuxers are probed and only ``decoders`` (FFmpeg decoder names) may see
    the bytes. ``probe=False``: the streams' parameters come from the container's headers,
    no packets are read to analyse them. Raises one of :data:`AV_ERRORS` for what it cannot
    open."""
    container_options = {"format_whitelist": _FORMAT_WHITELIST, "codec_whitelist": decoders}
    if not probe:
        container_options["analyzeduration"] = "1"  # microseconds; 0 would mean the default
    return av.open(
        io.BytesIO(data),
        mode="r",
        container_options=container_options,
        options=options or {},
        metadata_errors="replace",
    )


def extract_frame(
    data: bytes,
    *,
    max_pixels: int = 4096 * 2160,
    max_seconds: float = 120.0,
    jpeg_quality: int = 85,
    position: Literal["first", "middle"] = "first",
) -> Frame:
    """Decode one frame of the chunk, apply the display rotation, encode JPEG.

    ``position="first"`` takes the first frame (the keyframe the chunk starts on);
    ``"middle"`` the frame at half the chunk's duration. A keyframe from half a second
    before it to one frame interval after it is decoded alone (the producer forces one
    there; a phone's, every ~1.25 s, lands there; a recording's short last chunk starts
    within half a second of its middle): the cost of the first frame. Otherwise the first
    frame at or after the middle is decoded from the keyframe before it (a chunk with one
    keyframe decodes from its start, ~25 ms for 2.5 s of 640x360). When the middle cannot be
    reached (no duration, as in a WebM written live without one; a cut chunk) the last intact frame
    before it, else the first, is used. ``Frame.decoded`` says how many frames it took.

    Raises :class:`FrameError` for any chunk that yields no usable frame; no other
    exception escapes for bad input.
    """
    if not data:
        raise FrameError("the chunk is empty (0 bytes)", reason="empty")
    try:
        # For the decoders avformat_find_stream_info opens: take the sizes from the
        # headers, decode nothing (half the cost of a 480p chunk, and no bomb). Nor read the
        # chunk's packets to probe them (FFmpeg's default reads up to 5 s, the whole chunk):
        # the containers' headers carry what is used here, and opening costs a third.
        container = open_chunk(
            data, decoders=_DECODER_WHITELIST, options={"skip_frame": "all"}, probe=False
        )
    except AV_ERRORS as exc:
        kind = _container_kind(data)
        if kind is not None:
            raise FrameError(
                f"the chunk ({len(data)} bytes) starts like {kind} but its container cannot "
                f"be read, it is truncated or corrupt: {_describe(exc)}",
                reason="truncated",
            ) from exc
        detail = (
            "FFmpeg found no allowed format"  # what the format whitelist answers
            if isinstance(exc, av.error.ArgumentError)
            else _describe(exc)
        )
        raise FrameError(
            f"the chunk ({len(data)} bytes, starting {data[:8].hex()}) is not an MP4, WebM "
            f"or MKV video: {detail}",
            reason="not_video",
        ) from exc
    with container:
        stream = _video_stream(container)
        _check_limits(container, stream, max_pixels=max_pixels, max_seconds=max_seconds)
        decoded = _Decoded()
        middle = (
            _middle_frame(container, stream, max_pixels, decoded) if position == "middle" else None
        )
        if middle is None:
            if position == "middle":
                container.seek(0, stream=stream)  # start over from the first keyframe
                stream.codec_context.flush_buffers()
            frame = _first_frame(container, stream, max_pixels=max_pixels, decoded=decoded)
        else:
            frame = middle
        return _to_frame(frame, stream, jpeg_quality=jpeg_quality, decoded=decoded.count)


def _middle_frame(
    container: InputContainer, stream: VideoStream, max_pixels: int, decoded: _Decoded
) -> VideoFrame | None:
    """The middle frame; None when it cannot be had.

    A keyframe from :data:`NEAR_MIDDLE_SECONDS` before half the duration to one frame
    interval after it is the middle frame: decoding it is decoding one frame (the producer
    and a phone put one there; a chunk shorter than a second starts near its middle).
    Otherwise the first intact frame at or after half the duration, decoded from the
    keyframe before it.
    """
    duration = _duration_ticks(container, stream)
    if duration is None or stream.time_base is None:
        return None
    start = stream.start_time or 0
    target = start + duration // 2
    near = _frame_ticks(stream)
    codec = stream.codec_context
    _configure(codec, max_pixels)
    last: VideoFrame | None = None
    try:
        # the last keyframe up to one frame after the middle: the one at the middle if any
        container.seek(target + near, stream=stream, backward=True, any_frame=False)
        packets = container.demux(stream)
        first = next(packets, None)
        if first is None:
            return None
        before = int(NEAR_MIDDLE_SECONDS / stream.time_base)
        if first.is_keyframe and first.pts is not None and -before <= first.pts - target <= near:
            target = first.pts  # a keyframe at (or near enough to) the middle: decode it alone
        for packet in itertools.chain([first], packets):
            for frame in codec.decode(packet):
                decoded.count += 1
                if frame.is_corrupt or frame.pts is None:
                    continue
                if frame.pts >= target:
                    return _checked(frame, max_pixels=max_pixels)
                last = frame
        for frame in codec.decode(None):
            decoded.count += 1
            if not frame.is_corrupt and frame.pts is not None and frame.pts >= target:
                return _checked(frame, max_pixels=max_pixels)
            last = frame if not frame.is_corrupt else last
    except AV_ERRORS:
        pass  # a damaged tail: fall back to what decoded before it, or to the first frame
    return None if last is None else _checked(last, max_pixels=max_pixels)


def _frame_ticks(stream: VideoStream) -> int:
    """One frame interval in the stream's time base (0 when the rate is unknown)."""
    rate = stream.average_rate or stream.guessed_rate
    if not rate or stream.time_base is None:
        return 0
    return int(1 / (rate * stream.time_base))


def _duration_ticks(container: InputContainer, stream: VideoStream) -> int | None:
    if stream.duration:
        return int(stream.duration)
    if container.duration and stream.time_base:
        return int(container.duration / av.time_base / stream.time_base)
    return None


def _container_kind(data: bytes) -> str | None:
    """Name the container the bytes start like, or None."""
    if data[4:8] in _MP4_FIRST_BOXES:
        return "an MP4"
    if data.startswith(_EBML_MAGIC):
        return "a WebM/MKV"
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, av.FFmpegError):
        return f"FFmpeg: {exc.strerror}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _format_name(container: InputContainer) -> str:
    return "MP4" if "mp4" in container.format.name.split(",") else "WebM/MKV"


def _video_stream(container: InputContainer) -> VideoStream:
    streams = [
        stream
        for stream in container.streams.video
        if not stream.disposition & Disposition.attached_pic
    ]
    if not streams:
        kinds = ", ".join(stream.type for stream in container.streams) or "none"
        raise FrameError(
            f"the {_format_name(container)} container has no video stream (streams: {kinds})",
            reason="no_video_stream",
        )
    names = []
    for stream in streams:
        codec = stream.codec_context
        name = codec.codec.canonical_name if codec is not None else "unknown"
        if name in _VIDEO_CODECS:
            return stream
        names.append(name)
    raise FrameError(
        f"the {_format_name(container)} container's video is {', '.join(names)}, not one of "
        f"the codecs a recorder produces ({', '.join(sorted(_VIDEO_CODECS))}); not decoded",
        reason="unsupported_codec",
    )


def _check_limits(
    container: InputContainer, stream: VideoStream, *, max_pixels: int, max_seconds: float
) -> None:
    codec = stream.codec_context
    width, height = codec.width, codec.height
    if width * height > max_pixels:
        raise FrameError(
            f"the video is {width}x{height} = {width * height} pixels, above the limit of "
            f"{max_pixels}; not decoded",
            reason="too_large",
        )
    if container.duration is not None:
        seconds = container.duration / av.time_base
        if seconds > max_seconds:
            raise FrameError(
                f"the chunk lasts {seconds:.1f} s, above the limit of {max_seconds:g} s",
                reason="too_long",
            )


def _first_frame(
    container: InputContainer, stream: VideoStream, *, max_pixels: int, decoded: _Decoded
) -> VideoFrame:
    """Decode until the first intact video frame, decoding as few packets as possible.

    A damaged frame (concealed garbage, which would read as "no face") is skipped and only
    keyframes are decoded after it, until one decodes intact.
    """
    codec = stream.codec_context
    _configure(codec, max_pixels)
    packets = damaged = 0
    error: BaseException | None = None
    try:
        for packet in container.demux(stream):
            packets += packet.size > 0
            try:
                frames = _decode(codec, packet)
            except AV_ERRORS as exc:
                error = exc
                codec.skip_frame = "NONKEY"
                continue
            for frame in frames:
                decoded.count += 1
                if not frame.is_corrupt:
                    return _checked(frame, max_pixels=max_pixels)
                damaged += 1
                codec.skip_frame = "NONKEY"
    except AV_ERRORS as exc:  # the demuxer: a cut or corrupt container
        error = exc
    details = [f"{packets} video packets read"]
    if damaged:
        details.append(f"{damaged} damaged frames")
    if error is not None:
        details.append(_describe(error))
    raise FrameError(
        f"the {_format_name(container)} chunk is truncated or corrupt: no intact frame "
        f"decodes ({'; '.join(details)})",
        reason="truncated",
    ) from error


def _configure(codec: VideoCodecContext, max_pixels: int) -> None:
    """Set the decoder up before it opens; after the middle frame's attempt it is open
    already, configured, and PyAV refuses a new thread count (RuntimeError)."""
    if codec.is_open:
        return
    codec.thread_count = 1  # one frame, in a process-pool worker: threads only add latency
    codec.options = {"max_pixels": str(max_pixels)}  # the bitstream may disagree with the header


def _decode(codec: VideoCodecContext, packet: Packet) -> list[VideoFrame]:
    frames = codec.decode(packet)
    if not frames and packet.is_keyframe:
        # The keyframe comes first in display order: drain it now rather than feed the
        # B-frames the decoder would wait for, then reset the decoder for what follows.
        try:
            frames = codec.decode(None)
        finally:
            codec.flush_buffers()
    return frames


def _checked(frame: VideoFrame, *, max_pixels: int) -> VideoFrame:
    if frame.width * frame.height > max_pixels:
        raise FrameError(
            f"the decoded frame is {frame.width}x{frame.height}, above the limit of "
            f"{max_pixels} pixels",
            reason="too_large",
        )
    return frame


def _to_frame(frame: VideoFrame, stream: VideoStream, *, jpeg_quality: int, decoded: int) -> Frame:
    quarter_turns = round(frame.rotation / 90) % 4
    try:
        # one thread: this runs in a process-pool worker, one per core
        pixels = _TO_RGB.reformat(frame, format="rgb24", threads=1).to_ndarray()
    except AV_ERRORS as exc:
        raise FrameError(
            f"the first frame ({frame.format.name}, {frame.width}x{frame.height}) cannot be "
            f"converted to RGB: {_describe(exc)}",
            reason="not_video",
        ) from exc
    image = Image.fromarray(pixels)
    if quarter_turns:
        image = image.transpose(_TRANSPOSE[quarter_turns])
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=jpeg_quality)
    return Frame(
        thumb=_thumbnail(frame, quarter_turns),
        jpeg=buffer.getvalue(),
        width=image.width,
        height=image.height,
        rotation=quarter_turns * 90,
        time=_seconds_into_chunk(frame, stream),
        decoded=decoded,
    )


def _thumbnail(frame: VideoFrame, quarter_turns: int) -> bytes:
    """The frame as :data:`THUMB_SIDE` x :data:`THUMB_SIDE` grey levels, upright: swscale
    averages the luma over each cell (full range, as the RGB image's grey would be), then the
    32x32 grid is turned as the image is (counterclockwise, like ``Image.Transpose``)."""
    grey = _TO_GREY.reformat(
        frame,
        width=THUMB_SIDE,
        height=THUMB_SIDE,
        format="gray",
        interpolation="AREA",
        threads=1,
    ).to_ndarray()
    return np.ascontiguousarray(np.rot90(grey, k=quarter_turns)).tobytes()


def _seconds_into_chunk(frame: VideoFrame, stream: VideoStream) -> float:
    # From the stream's time base: a frame drained from the decoder carries none of its own.
    if frame.pts is None or stream.time_base is None:
        return 0.0
    return max(float((frame.pts - (stream.start_time or 0)) * stream.time_base), 0.0)

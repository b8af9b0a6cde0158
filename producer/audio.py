"""Chunks with a microphone: a video chunk with an audio track laid into it.

The student page records the microphone into its chunks when the exam's policy
asks for it (``audio: true``); the Chime capture pipeline's chunks carry the
meeting's audio. :func:`with_audio` makes such a chunk from a video chunk and
16 kHz mono samples (AAC in MP4, as a phone or the pipeline writes; the
browser's Opus in WebM decodes the same way), for the tests and the speech
suite of ``proctor eval``. :func:`mix` lays one sound over another (a voice
in a café), :func:`loop` repeats a sound to a length.

Errors::

    ProctoringError
     └── ChunkingError     the video chunk cannot be read or the chunk cannot be written
"""

from __future__ import annotations

import io

import av
import numpy as np
from av.audio.stream import AudioStream
from numpy.typing import NDArray

from proctoring.speech import RATE
from producer.chunking import ChunkingError

__all__ = ["loop", "mix", "with_audio"]


def with_audio(chunk: bytes, samples: NDArray[np.int16], *, codec: str = "aac") -> bytes:
    """``chunk`` (an MP4 video chunk) with ``samples`` (16 kHz mono) as its audio track;
    the video's packets are copied unchanged."""
    buffer = io.BytesIO()
    try:
        with av.open(io.BytesIO(chunk), "r") as source, av.open(buffer, "w", format="mp4") as out:
            video_in = source.streams.video[0]
            video_out = out.add_stream_from_template(video_in)
            audio = out.add_stream(codec, rate=48_000, layout="mono")
            assert isinstance(audio, AudioStream)
            for packet in source.demux(video_in):
                if packet.dts is None:
                    continue
                packet.stream = video_out
                out.mux(packet)
            if samples.size:
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1),
                    format="s16",
                    layout="mono",
                )
                frame.sample_rate = RATE
                frame.pts = 0
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode(None):
                out.mux(packet)
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise ChunkingError(f"cannot lay audio into the chunk: {exc}") from exc
    return buffer.getvalue()


def mix(base: NDArray[np.int16], voice: NDArray[np.int16], *, at: int = 0) -> NDArray[np.int16]:
    """``voice`` laid over ``base`` from sample ``at`` (summed, clipped; cut at base's end)."""
    out = base.astype(np.int32)
    end = min(base.size, at + voice.size)
    if end > at:
        out[at:end] += voice[: end - at]
    return np.clip(out, -32768, 32767).astype(np.int16)


def loop(sound: NDArray[np.int16], size: int) -> NDArray[np.int16]:
    """``sound`` repeated (or cut) to ``size`` samples."""
    if size <= 0:
        return np.zeros(0, dtype=np.int16)
    if sound.size == 0:
        return np.zeros(size, dtype=np.int16)
    return np.resize(sound, size).astype(np.int16)

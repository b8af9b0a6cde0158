"""The speech suite of ``proctor eval --speech``: labelled sessions with a microphone.

Every session is a student's 5 s chunks (a real phone recording's video with
an AAC track laid in, :func:`producer.audio.with_audio`) over a *background*:

- ``silence``: the all-zero audio of ``talking/liveportrait/d18.mp4`` and
  ``d19.mp4`` (a muted microphone, digital silence);
- ``room``: the near-silent track of ``talking/liveportrait/d9.mp4`` (a quiet
  room, about -43 dBFS at its loudest);
- ``cafe``: ``audio/noisereduce/cafe_short.wav`` (café noise, no clear speech),
  looped.

A *talking* session lays one speaker's recordings, one after the other with
0.3 s between them and repeated to :data:`TALK_SECONDS`, over its background
from :data:`TALK_AT` on; the span is a labelled TALKING incident. The
recordings come at very different levels (-41 to -15 dBFS RMS), so the voice
is brought to :data:`VOICE_DBFS` (a student speaking at a laptop's
microphone) and, under it, the café to :data:`SNR_DB` below the voice: the café
recording at its own level is as loud as the voices, a crowd at the next
table rather than a room. Honest café sessions keep the café at its own level,
the harder case for false alerts. An *honest*
session has its background only, or one short remark (a word or three, under
any policy's allowance): no incident. Speakers are split into two halves by
person (the two CMU ARCTIC speakers apart, the same woman's two clips in one
half): a threshold is chosen on ``development`` and the figures reported on
``test``. A recording counts as speech only when at least :data:`SPEECH_BAND_SHARE`
of its energy lies in the telephone band, 300-3400 Hz, the band speech needs to
be understood (:func:`speech_band_share`); every speaker's recordings here have
21-97 %. ``silero-vad/test.opus`` (labelled "speech" by the data's manifest,
unverified; silero-vad's own tests assert only that the detector returns) has 4 %
there and 95 % at 100-300 Hz, so it is not among the speakers. The backgrounds
are few (one café recording of 4.5 s): both halves use them, and looped under
5 s chunks the café gives only 9 distinct chunks, so honest hours of it measure
little beyond those (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from proctoring.speech import RATE, load_pcm
from producer.audio import loop, mix, with_audio
from producer.chunking import chunk_recording

__all__ = [
    "BACKGROUNDS",
    "SPEAKERS",
    "SPEECH_BAND_SHARE",
    "TALK_AT",
    "TALK_SECONDS",
    "SpeechHalf",
    "SpeechSession",
    "render",
    "speech_band_share",
    "speech_sessions",
]

SpeechHalf = Literal["development", "test"]
CHUNK_SECONDS = 5
TALK_AT = 15
"""Seconds of the background before a talking span starts."""
TALK_SECONDS = 30
"""Seconds a talking span lasts (well over the default allowance of 10 s of speech)."""
TALKING_CHUNKS = 12  # a talking session: 15 s, 30 s of talking, 15 s
HONEST_CHUNKS = 24  # an honest session: 2 minutes
SPEAKERS: dict[SpeechHalf, dict[str, tuple[str, ...]]] = {
    "development": {
        "jfk": ("audio/whisper/jfk.flac",),
        "arctic-aew": tuple(
            f"audio/pyroomacoustics/cmu_arctic_us_aew_a000{i}.wav" for i in (1, 2, 3)
        ),
        "english": ("audio/speech_recognition/english.wav",),
        "chinese": ("audio/speech_recognition/chinese.flac",),
        "face-1": ("talking/video-retalking/face_1.mp4",),
        "face-2": ("talking/video-retalking/face_2.mp4",),
        "aoc": (
            "talking/video-retalking/face_3.mp4",
            "talking/sadtalker/WDA_AlexandriaOcasioCortez_000.mp4",
        ),
    },
    "test": {
        "arctic-axb": tuple(
            f"audio/pyroomacoustics/cmu_arctic_us_axb_a000{i}.wav" for i in (4, 5, 6)
        ),
        "french": ("audio/speech_recognition/french.aiff",),
        "silero-mp3": ("audio/silero-vad/test.mp3",),
        "face-4": ("talking/video-retalking/face_4.mp4",),
        "face-5": ("talking/video-retalking/face_5.mp4",),
        "d20": ("talking/liveportrait/d20.mp4",),
    },
}
"""Who speaks, by half: person -> their recordings (relative to the data folder)."""
BACKGROUNDS: dict[str, tuple[str, ...]] = {
    "silence": ("talking/liveportrait/d18.mp4", "talking/liveportrait/d19.mp4"),
    "room": ("talking/liveportrait/d9.mp4",),
    "cafe": ("audio/noisereduce/cafe_short.wav",),
}
_REMARKS: dict[SpeechHalf, str] = {
    "development": "audio/speech_recognition/english.wav",  # "one two three"
    "test": "audio/pyroomacoustics/cmu_arctic_us_axb_a0005.wav",  # one short sentence
}
SPEECH_BAND = (300.0, 3400.0)
"""Hz: the telephone band, which carries what makes speech intelligible."""
SPEECH_BAND_SHARE = 0.1
"""The least share of a recording's energy in :data:`SPEECH_BAND` for it to count as
speech (the suite's speakers: 0.21-0.97)."""
VOICE_DBFS = -20.0
"""RMS level the voice is brought to."""
SNR_DB = 10.0
"""How far the café lies under the voice in a talking session."""
_VIDEO = "video/center_focus.mp4"
_GAP = np.zeros(int(0.3 * RATE), dtype=np.int16)


@dataclass(frozen=True)
class SpeechSession:
    """One labelled session: who speaks over which background, and when."""

    name: str
    background: str
    chunks: int
    speaker: str | None = None
    """Talking from :data:`TALK_AT` for :data:`TALK_SECONDS` (a TALKING incident)."""
    remark: str | None = None
    """A short remark at 30 s (no incident)."""

    @property
    def incidents(self) -> tuple[tuple[float, float], ...]:
        return ((TALK_AT, TALK_AT + TALK_SECONDS),) if self.speaker else ()


def speech_sessions(
    half: SpeechHalf, backgrounds: tuple[str, ...] = tuple(BACKGROUNDS)
) -> list[SpeechSession]:
    """Each speaker of ``half`` over each background, and the honest sessions."""
    sessions = [
        SpeechSession(f"{speaker}-{background}", background, TALKING_CHUNKS, speaker=speaker)
        for speaker in SPEAKERS[half]
        for background in backgrounds
    ]
    sessions += [SpeechSession(f"honest-{b}", b, HONEST_CHUNKS) for b in backgrounds]
    sessions += [
        SpeechSession(f"remark-{b}", b, HONEST_CHUNKS, remark=_REMARKS[half]) for b in backgrounds
    ]
    return sessions


def render(session: SpeechSession, half: SpeechHalf, data_dir: Path) -> Iterator[bytes]:
    """The session's chunks: MP4 files with video and the session's audio."""
    size = session.chunks * CHUNK_SECONDS * RATE
    audio = loop(_background(session.background, str(data_dir)), size)
    if session.speaker is not None:
        voice = np.concatenate(
            [
                part
                for path in SPEAKERS[half][session.speaker]
                for part in (_at_level(_pcm(str(data_dir / path)), VOICE_DBFS), _GAP)
            ]
        )
        if session.background == "cafe":
            audio = _at_level(audio, VOICE_DBFS - SNR_DB)
        audio = mix(audio, loop(voice, TALK_SECONDS * RATE), at=TALK_AT * RATE)
    if session.remark is not None:
        audio = mix(audio, _pcm(str(data_dir / session.remark)), at=30 * RATE)
    videos = _videos(str(data_dir))
    step = CHUNK_SECONDS * RATE
    for index in range(session.chunks):
        yield with_audio(videos[index % len(videos)], audio[index * step : (index + 1) * step])


def speech_band_share(pcm: NDArray[np.int16]) -> float:
    """The share of a 16 kHz recording's energy in :data:`SPEECH_BAND`."""
    power = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
    hertz = np.fft.rfftfreq(pcm.size, 1 / RATE)
    total = float(power.sum())
    band = (hertz >= SPEECH_BAND[0]) & (hertz <= SPEECH_BAND[1])
    return float(power[band].sum()) / total if total else 0.0


def _at_level(sound: NDArray[np.int16], dbfs: float) -> NDArray[np.int16]:
    """``sound`` scaled to an RMS of ``dbfs`` (clipped where it would overflow)."""
    rms = float(np.sqrt(np.mean(sound.astype(np.float64) ** 2))) if sound.size else 0.0
    if rms == 0:
        return sound
    gain = 32768 * 10 ** (dbfs / 20) / rms
    return np.clip(sound * gain, -32768, 32767).astype(np.int16)


@cache
def _pcm(path: str) -> NDArray[np.int16]:
    return load_pcm(path)


@cache
def _background(name: str, data_dir: str) -> NDArray[np.int16]:
    return np.concatenate([_pcm(str(Path(data_dir) / path)) for path in BACKGROUNDS[name]])


@cache
def _videos(data_dir: str) -> tuple[bytes, ...]:
    """Video-only chunks of a real phone recording (the first two: full 5 s ones)."""
    chunks = [c.data for c in chunk_recording(Path(data_dir) / _VIDEO)]
    return tuple(chunks[:2])

"""The voice activity detector on real recordings: speech found in speech, none in a café's
noise or in digital silence; a chunk's audio track read from the chunk itself; an audio track
that cannot be decoded is a clear error, a chunk without one is no speech at all."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import av
import numpy as np
import pytest

from proctoring.speech import SpeechError, chunk_speech, load_pcm, speech_segments
from producer.audio import with_audio
from producer.chunking import chunk_recording
from tests.conftest import needs_data

pytestmark = needs_data


def test_speech_is_found_in_jfk_and_english(data_dir: Path) -> None:
    jfk = speech_segments(load_pcm(data_dir / "audio/whisper/jfk.flac"))
    assert jfk.duration == pytest.approx(11.0, abs=0.1)
    assert 6.0 < jfk.seconds < 10.0  # "ask not what your country..." with its pauses
    assert jfk.segments[0][0] < 0.5
    english = speech_segments(load_pcm(data_dir / "audio/speech_recognition/english.wav"))
    assert english.seconds > 1.0  # "one, two, three": three words, three segments
    assert len(english.segments) == 3


def test_cafe_noise_and_digital_silence_are_not_speech(data_dir: Path) -> None:
    cafe = speech_segments(load_pcm(data_dir / "audio/noisereduce/cafe_short.wav"))
    assert cafe.level_dbfs > -20  # loud: the café is noisy, not quiet
    assert cafe.segments == ()
    silent = speech_segments(load_pcm(data_dir / "talking/liveportrait/d18.mp4"))
    assert silent.duration > 7 and silent.level_dbfs == float("-inf")
    assert silent.segments == ()


def test_a_chunks_own_audio_track_is_analysed(data_dir: Path) -> None:
    video = next(iter(chunk_recording(data_dir / "video/center_focus.mp4"))).data
    voice = load_pcm(data_dir / "audio/whisper/jfk.flac")[: 5 * 16_000]
    speech = chunk_speech(with_audio(video, voice))
    assert speech is not None and speech.seconds > 2.0
    quiet = chunk_speech(with_audio(video, np.zeros(5 * 16_000, dtype=np.int16)))
    assert quiet is not None and quiet.segments == ()
    assert chunk_speech(video) is None  # no audio track: nothing to judge, nothing changes


def test_a_broken_audio_track_is_a_clear_error(data_dir: Path) -> None:
    with pytest.raises(SpeechError) as caught:
        chunk_speech(b"RIFF....WAVEfmt " + bytes(200))  # a WAV: not a container we accept
    assert caught.value.reason == "not_media"
    again = pickle.loads(pickle.dumps(caught.value))  # crosses the process pool intact
    assert again.reason == "not_media" and str(again) == str(caught.value)
    odd = io.BytesIO()  # a valid WebM/MKV whose audio no recorder produces: never decoded
    with av.open(odd, "w", format="matroska") as out:
        stream = out.add_stream("ac3", rate=48_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 48_000), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 48_000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    with pytest.raises(SpeechError) as caught:
        chunk_speech(odd.getvalue())
    assert caught.value.reason == "unsupported_codec" and "ac3" in str(caught.value)

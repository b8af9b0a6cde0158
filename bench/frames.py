"""Frame extraction per chunk: ``extract_frame`` against ``ffmpeg`` as a subprocess and the floor.

Chunks are cut from every recording in ``../shared/data/video`` by the
producer's own chunker. Per chunk, the median of repeated runs of:

- ``extract_frame(chunk)``: the product (first frame, upright, JPEG);
- ``extract_frame(chunk, position="middle")``: the consumer's default, reported beside it
  (``details.middle_ms``; the producer's chunks carry a keyframe at the middle);
- ``ffmpeg -i chunk -frames:v 1 out.jpg`` as a subprocess: what a Lambda with an
  ffmpeg layer does (Debian's ffmpeg; ``make bench`` installs it with apt-get);
- the floor: open the container, decode the one keyframe, RGB, JPEG - nothing else
  (no format whitelist, size checks, rotation or error handling).

The figures are the means over the chunks of those medians.
"""

from __future__ import annotations

import functools
import io
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter
from PIL import Image

from bench.harness import Figure, Size, median_ms
from proctoring.frames import extract_frame
from producer.chunking import chunk_recording

__all__ = ["chunks", "floor", "run"]

_RGB = VideoReformatter()


def chunks(data_dir: Path, limit: int | None = None) -> list[tuple[str, bytes]]:
    found = [
        (f"{path.name}#{i}", chunk.data)
        for path in sorted((data_dir / "video").glob("*.mp4"))
        for i, chunk in enumerate(chunk_recording(path))
    ]
    return found[:limit] if limit else found


def floor(data: bytes) -> bytes:
    """Decode the first keyframe and encode it as JPEG; nothing else."""
    with av.open(io.BytesIO(data), "r", options={"skip_frame": "all"}) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context
        codec.thread_count = 1
        for packet in container.demux(stream):
            frames = codec.decode(packet) or codec.decode(None)
            if frames:
                pixels = _RGB.reformat(frames[0], format="rgb24", threads=1).to_ndarray()
                out = io.BytesIO()
                Image.fromarray(pixels).save(out, "JPEG", quality=85)
                return out.getvalue()
    raise ValueError("no frame")


def _interleaved(data: bytes, repeats: int) -> tuple[float, float, float]:
    """Medians (ms) of extract_frame (first frame), of the floor and of extract_frame's
    middle frame, run alternately so that a burst of other work on the machine hits all
    alike."""
    extract_frame(data)
    floor(data)
    extract_frame(data, position="middle")
    ours, least, middles = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        extract_frame(data)
        first_done = time.perf_counter()
        floor(data)
        floor_done = time.perf_counter()
        extract_frame(data, position="middle")
        ours.append(first_done - started)
        least.append(floor_done - first_done)
        middles.append(time.perf_counter() - floor_done)
    return (
        statistics.median(ours) * 1000,
        statistics.median(least) * 1000,
        statistics.median(middles) * 1000,
    )


def run(data_dir: Path, size: Size) -> list[Figure]:
    cut = chunks(data_dir, limit=3 if size == "tiny" else None)
    repeats, ffmpeg_repeats = (3, 1) if size == "tiny" else (40, 7)
    ffmpeg = shutil.which("ffmpeg")
    product, floors, middles, subprocesses = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-frames-") as folder:
        for name, data in cut:
            ours, least, middle = _interleaved(data, repeats)
            product.append(ours)
            floors.append(least)
            middles.append(middle)
            if ffmpeg is None:
                continue
            source, target = Path(folder) / "chunk.mp4", Path(folder) / "out.jpg"
            source.write_bytes(data)
            command = [ffmpeg, "-v", "error", "-y", "-i", str(source)]
            command += ["-frames:v", "1", str(target)]
            subprocesses.append(
                median_ms(functools.partial(subprocess.run, command, check=True), ffmpeg_repeats)
            )
            print(
                f"  {name}: extract_frame {product[-1]:.2f} ms (middle {middles[-1]:.2f}), "
                f"floor {floors[-1]:.2f} ms, ffmpeg {subprocesses[-1]:.1f} ms"
            )
    value = round(statistics.mean(product), 2)
    floor_ms = round(statistics.mean(floors), 2)
    details = {
        "chunks": len(cut),
        "repeats_per_chunk": repeats,
        "per_chunk_ms": dict(zip([n for n, _ in cut], [round(p, 2) for p in product], strict=True)),
        # the consumer's default position, against the same floor
        "middle_ms": round(statistics.mean(middles), 2),
        "middle_over_floor": round(statistics.mean(middles) / statistics.mean(floors), 2),
    }
    if ffmpeg is None:
        print(
            "  ffmpeg not found on PATH: the subprocess baseline is not measured "
            "(apt-get install ffmpeg, or run `make bench`, which installs it)"
        )
        ffmpeg_ms = None
    else:
        ffmpeg_ms = round(statistics.mean(subprocesses), 1)
        version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=False)
        details["ffmpeg"] = version.stdout.splitlines()[0] if version.stdout else ffmpeg
    speedup = None if ffmpeg_ms is None else round(ffmpeg_ms / value, 1)
    if ffmpeg_ms is not None:  # the bound: even the floor is only this much faster
        details["floor_times_faster_than_ffmpeg"] = round(ffmpeg_ms / floor_ms, 1)
    over_floor = round(value / floor_ms, 2)
    return [
        Figure(
            name="frame_extraction_vs_ffmpeg",
            value=value,
            unit="ms per chunk",
            baseline=ffmpeg_ms,
            baseline_is="ffmpeg -i chunk -frames:v 1 out.jpg, a subprocess",
            ratio=speedup,
            ratio_means="times faster than the baseline",
            goal=">= 25x faster",
            met=None if speedup is None else speedup >= 25,
            details=details,
        ),
        Figure(
            name="frame_extraction_vs_floor",
            value=value,
            unit="ms per chunk",
            baseline=floor_ms,
            baseline_is="floor: open, decode the keyframe, RGB, JPEG; nothing else",
            ratio=over_floor,
            ratio_means="times the floor's time",
            goal="<= 1.3x the floor",
            met=over_floor <= 1.3,
            details={"chunks": len(cut)},
        ),
    ]

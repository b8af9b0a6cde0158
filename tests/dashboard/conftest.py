"""Browser tests of the web pages: the whole exam service, headless Chromium, real video.

``web`` runs the local server with the router, the consumer (exam gate on) and the
forwarder against the emulator, with a proctor and two students signed up in the
local user pool (a student's name is an XSS payload). ``launch`` starts Debian's
Chromium through Playwright with a fake camera fed from a y4m made at test time
from ``../shared/data/video`` (``camera_file``); nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from infrastructure.local import add_user
from proctoring.settings import Settings
from tests.conftest import DATA, require_data
from tests.lambdas.api.conftest import PASSWORD, ServerThread, identity_settings

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
XSS_NAME = "<img src=x onerror=\"window.__xss='name'\">Eve"
PEOPLE = {
    "proctor": ("proctor@example.edu", "proctor", "Dr. Ada Proctor"),
    "student": ("student@example.edu", "student", "Barack Student"),
    "eve": ("eve@example.edu", "student", XSS_NAME),
}


@dataclass
class Web:
    settings: Settings
    url: str
    ids: dict[str, str]
    emails: dict[str, str]


@pytest.fixture
def web(settings: Settings, pool: Executor) -> Iterator[Web]:
    require_data()
    settings = identity_settings(settings.model_copy(update={"exam_gate": True}))
    ids, emails = {}, {}
    for who, (email, group, name) in PEOPLE.items():
        ids[who] = add_user(settings, email, group, PASSWORD, name=name)
        emails[who] = email
    server = ServerThread(settings, pipeline=pool).start()
    try:
        yield Web(settings, server.url, ids, emails)
    finally:
        server.stop()


def to_y4m(source: Path, target: Path, *, seconds: float = 12.0, fps: int = 15) -> Path:
    """``seconds`` of ``source`` as an upright y4m (the fake camera's format) at ``fps``."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        frames = []
        step = 1.0 / fps
        next_time = 0.0
        for frame in container.decode(stream):
            if frame.time is None or frame.time < next_time:
                continue
            next_time += step
            pixels = frame.to_ndarray(format="rgb24")
            pixels = np.rot90(pixels, k=round(frame.rotation / 90) % 4)  # counter-clockwise
            frames.append(np.ascontiguousarray(pixels))
            if frame.time >= seconds:
                break
    height, width = (d - d % 2 for d in frames[0].shape[:2])
    with av.open(str(target), "w", format="yuv4mpegpipe") as out:
        video = out.add_stream("rawvideo", rate=Fraction(fps, 1))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        for pixels in frames:
            frame = av.VideoFrame.from_ndarray(pixels[:height, :width], format="rgb24")
            for packet in video.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    return target


def to_wav(source: Path, target: Path) -> Path:
    """``source``'s audio as a 16-bit PCM WAV (the fake microphone's format), 48 kHz mono."""
    from proctoring.speech import load_pcm

    samples = load_pcm(source)
    with av.open(str(target), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=16_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 16_000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return target


@pytest.fixture(scope="session")
def camera_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A y4m of ``../shared/data/video/<name>``, made once per session."""
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            folder = tmp_path_factory.mktemp("camera")
            made[name] = to_y4m(DATA / "video" / name, folder / (Path(name).stem + ".y4m"))
        return made[name]

    return make


@pytest.fixture
def launch() -> Iterator[Callable[..., Any]]:
    """``launch(camera=y4m, microphone=wav)`` -> a Playwright Browser (closed after the test).

    Playwright starts on the first call: its sync API runs an event loop in this thread,
    so a test does its own ``asyncio.run`` set-up first.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"Debian's chromium is not at {CHROMIUM} (make test installs it)")
    from playwright.sync_api import sync_playwright

    with ExitStack() as stack:

        def start(camera: Path | None = None, microphone: Path | None = None) -> Any:
            playwright = stack.enter_context(sync_playwright())
            args = [
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                "--auto-select-desktop-capture-source=Entire screen",  # getDisplayMedia
            ]
            if camera is not None:
                args.append(f"--use-file-for-fake-video-capture={camera}")
            if microphone is not None:  # a WAV file (to_wav), looped by Chromium
                args.append(f"--use-file-for-fake-audio-capture={microphone}")
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=args
            )
            stack.callback(browser.close)
            return browser

        yield start


Screenshot = Callable[[Any, str], Path]
"""``screenshot(page, name)`` -> the PNG it wrote (the ``screenshot`` fixture)."""


@pytest.fixture(scope="session")
def screenshots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests' pictures go: the run's temporary folder, or the README's
    docs/screenshots with ``--update-screenshots`` (so a test run never rewrites a committed
    file, and two workers of a parallel run never write the same one)."""
    if request.config.getoption("update_screenshots"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def screenshot(screenshots: Path) -> Screenshot:
    """The README's pictures, taken by the test run (into ``screenshots``).

    A picture is rewritten only when it changed visibly (more than 5 % of its
    pixels, by more than a faint shade), so the video frames and clocks on the
    pages do not dirty the tree when the pictures are updated; commit the ones
    that changed.
    """

    def take(page: Any, name: str) -> Path:
        path = screenshots / f"{name}.png"
        taken = page.screenshot(full_page=False)
        if not path.exists() or _visibly_different(path.read_bytes(), taken):
            path.write_bytes(taken)
        return path

    return take


def _visibly_different(before: bytes, after: bytes) -> bool:
    import io

    import numpy as np
    from PIL import Image

    old = np.asarray(Image.open(io.BytesIO(before)).convert("L"), dtype=np.int16)
    new = np.asarray(Image.open(io.BytesIO(after)).convert("L"), dtype=np.int16)
    if old.shape != new.shape:
        return True
    return bool((np.abs(old - new) > 24).mean() > 0.05)

"""``proctor demo`` opens with the proctor console showing the demo exam, signed in."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import poll, require_data
from tests.dashboard.conftest import Screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]
_LINK = re.compile(r"proctor console: (http://\S+)")


def test_the_demo_prints_a_signed_in_console_link_showing_its_exam(
    tmp_path: Path, launch: Callable[..., Any], screenshot: Screenshot
) -> None:
    require_data()
    demo = subprocess.Popen(
        [sys.executable, "-m", "cli", "demo", "--speed", "0", "--no-open"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    output = demo.stdout
    assert output is not None

    def read() -> None:
        with output:
            for line in output:
                lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        link = None
        for _ in poll("the demo prints the console's link", 120, interval=0.1):
            while not lines.empty():
                found = _LINK.search(lines.get())
                link = found.group(1) if found else link
            if link or demo.poll() is not None:
                break
        assert link, f"demo exited with {demo.returncode}"
        context = launch().new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        page.goto(link)
        expect(page.get_by_role("heading", name="Demo exam")).to_be_visible()
        assert "token=" not in page.url  # the token left the address bar
        expect(page.locator("#grid li")).to_have_count(4, timeout=30_000)
        for rule in ("FACE_MISMATCH", "MULTIPLE_FACES", "NO_FACE"):
            expect(page.locator(f'#feed li[data-type="{rule}"]').first).to_be_visible(
                timeout=120_000
            )
        expect(page.locator("#grid li").first).to_have_class(re.compile("attention"))
        screenshot(page, "demo-console")
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(10)
    assert demo.returncode == 0

"""A student's network drops for 20 s mid-exam: the page keeps recording into IndexedDB
and, once the network is back, uploads every chunk it kept, in order; none is lost."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest
from playwright.sync_api import expect

from tests.conftest import poll
from tests.dashboard.conftest import Web
from tests.dashboard.pages import (
    accepted,
    chunk_keys,
    create_and_start_exam,
    get_chunk,
    proctor_console,
    student_page,
    uploaded,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]
OFFLINE_SECONDS = 20.0
_SEQUENCE = re.compile(r"/camera/(\d+)_\d+\.webm$")


def _waiting(page: Any) -> int:
    return int(page.locator("#upload-status").get_attribute("data-waiting") or 0)


def test_twenty_seconds_offline_lose_no_chunk_and_keep_their_order(
    web: Web, launch: Callable[..., Any], camera_file: Callable[[str], Path]
) -> None:
    browser = launch(camera=camera_file("center_focus.mp4"))
    _, console = proctor_console(browser, web.url, web.emails["proctor"])
    exam_id = create_and_start_exam(console, "Statistics - network cut")
    context, student = student_page(browser, web.url, exam_id, web.emails["student"])
    for _ in poll("two chunks uploaded before the cut", 30):
        if uploaded(student) >= 2:
            break

    context.set_offline(True)
    cut = time.monotonic()
    before = uploaded(student)
    expect(student.locator("#upload-status")).to_contain_text("offline", timeout=15_000)
    for _ in poll("20 s offline with the chunks kept on the student's computer", 40):
        if time.monotonic() - cut >= OFFLINE_SECONDS and _waiting(student) >= 3:
            break
    kept = _waiting(student)
    assert uploaded(student) == before, "nothing can be uploaded while offline"
    expect(student.locator("#recording")).to_be_visible()

    context.set_offline(False)
    back = time.monotonic()
    for _ in poll("every kept chunk uploaded after the network came back", 60):
        if _waiting(student) == 0 and uploaded(student) >= before + kept:
            break
    print(f"{kept} chunks kept offline, all uploaded {time.monotonic() - back:.1f} s after")

    order = accepted(student)
    keys = chunk_keys(web.settings, exam_id, web.ids["student"])
    sequences = [int(_SEQUENCE.search(k).group(1)) for k in keys]  # type: ignore[union-attr]
    assert sequences == list(range(len(keys))), "no chunk lost"
    assert order == keys[: len(order)] and len(keys) - len(order) <= 1, "arrived in order"
    assert len(order) >= before + kept
    for key in keys[: len(order)]:
        with av.open(io.BytesIO(get_chunk(web.settings, key))) as container:
            assert next(container.decode(video=0)).width > 0, key

"""The student page's integrity events in headless Chromium, through the whole service: the
exam tab left for longer than the policy allows, a paste in the answer box, full screen left
and the camera track stopped each reach the proctor's console as an alert; 20 s offline, every
event the page saw arrives afterwards, in order, none twice. The first exam's policy also asks
for the microphone (Chromium's fake one, fed JFK's speech from a WAV): the consent names it,
the uploaded chunks carry an Opus track, and TALKING reaches the console.

Headless Chromium keeps every tab visible and focused (a second page brought to the front
changes nothing the exam page can see), so leaving the tab is the page's own
``visibilitychange`` listener seeing ``document.visibilityState`` turn ``hidden`` and back, as
a real switch makes it; the time away is real and the exam's LEFT_EXAM tolerance is set to
1 s instead of waiting minutes. The paste is a real one (clipboard, Ctrl+V), full screen is
entered by a click and left by the page, the camera track is stopped by script.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest
from playwright.sync_api import Page, expect

from proctoring.aws import sync_client
from proctoring.storage import from_item, to_item
from tests.conftest import DATA, poll
from tests.dashboard.conftest import Web, to_wav
from tests.dashboard.pages import create_and_start_exam, proctor_console, student_page

pytestmark = [pytest.mark.slow, pytest.mark.browser]
AWAY_SECONDS = 2.0
OFFLINE_SECONDS = 20.0
# Granting replaces the origin's permissions: without the camera's, Chromium ends its track.
CLIPBOARD = ["camera", "clipboard-read", "clipboard-write"]
_WATCH = """() => {
  window.__recorded = []; window.__sent = [];
  addEventListener('proctoring:integrity-recorded', (e) => window.__recorded.push(e.detail));
  addEventListener('proctoring:integrity-sent', (e) => window.__sent.push(...e.detail));
}"""
_VISIBILITY = """(state) => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => state === 'hidden'});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def _policy(web: Web, exam_id: str, tolerances: dict[str, float], **more: Any) -> None:
    """The exam's policy item (before any chunk: the consumer caches policies)."""
    sync_client(web.settings, "dynamodb").put_item(
        TableName=web.settings.names.sessions_table,
        Item=to_item(
            {"exam_id": exam_id, "student_id": "#policy",
             "policy": {"integrity_tolerances": tolerances, **more}}
        ),
    )  # fmt: skip


def _exam(
    web: Web, browser: Any, title: str, tolerances: dict[str, float], **policy: Any
) -> tuple[Page, Any, Page]:
    _, console = proctor_console(browser, web.url, web.emails["proctor"])
    exam_id = create_and_start_exam(console, title)
    _policy(web, exam_id, tolerances, **policy)
    context, student = student_page(browser, web.url, exam_id, web.emails["student"])
    student.evaluate(_WATCH)
    return console, context, student


def _away(context: Any, student: Page, seconds: float) -> None:
    """Another tab in front for ``seconds``, then the exam tab again."""
    other = context.new_page()
    other.bring_to_front()
    student.evaluate(_VISIBILITY, "hidden")
    left = time.monotonic()
    for _ in poll("the time away", seconds + 5, interval=0.1):
        if time.monotonic() - left >= seconds:
            break
    student.bring_to_front()
    student.evaluate(_VISIBILITY, "visible")
    other.close()


def _alert(console: Page, rule: str) -> Any:
    item = console.locator(f'#feed [data-type="{rule}"]').first
    expect(item).to_be_visible(timeout=30_000)
    return item


def _audio_chunk(web: Web, exam_id: str) -> bytes:
    """The student's first uploaded camera chunk."""
    s3 = sync_client(web.settings, "s3")
    bucket = web.settings.names.chunks_bucket
    prefix = f"chunks/{exam_id}/{web.ids['student']}/camera/"
    for _ in poll("a camera chunk uploaded", 30):
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        if listed:
            break
    first = min(listed, key=lambda o: o["Key"])["Key"]
    body: bytes = s3.get_object(Bucket=bucket, Key=first)["Body"].read()
    return body


def test_leaving_pasting_full_screen_and_camera_reach_the_console(
    web: Web, launch: Callable[..., Any], camera_file: Callable[[str], Path], tmp_path: Path
) -> None:
    speech = to_wav(DATA / "audio/whisper/jfk.flac", tmp_path / "jfk.wav")
    browser = launch(camera=camera_file("center_focus.mp4"), microphone=speech)
    # the microphone too: more than 2 s of speech in 30 s is TALKING
    console, context, student = _exam(
        web, browser, "Integrity - events", {"LEFT_EXAM": 1},
        audio=True, talking_seconds=2, talking_window=30,
    )  # fmt: skip
    context.grant_permissions([*CLIPBOARD, "microphone"], origin=web.url)
    assert student.evaluate("!document.querySelector('#consent-microphone').hidden")
    expect(student.locator("#consent-microphone")).to_contain_text("microphone")
    expect(student.locator("#check-microphone")).to_contain_text("Microphone: ✓")
    exam_id = console.locator("#student-link").get_attribute("href").rsplit("exam=", 1)[1]  # type: ignore[union-attr]
    with av.open(io.BytesIO(_audio_chunk(web, exam_id))) as chunk:
        assert [s.codec_context.name for s in chunk.streams.audio] == ["opus"]
        assert chunk.streams.video, "the camera's video beside the microphone"
    talking = _alert(console, "TALKING")
    expect(talking).to_contain_text("s of speech in 30 s")

    _away(context, student, AWAY_SECONDS)
    back = time.monotonic()
    left = _alert(console, "LEFT_EXAM")
    print(f"LEFT_EXAM on the console {time.monotonic() - back:.1f} s after the student came back")
    expect(left).to_contain_text("page event")
    seconds = float(left.inner_text().split(" s ·")[0].rsplit("· ", 1)[1])
    assert AWAY_SECONDS <= seconds < AWAY_SECONDS + 3, left.inner_text()

    student.evaluate("navigator.clipboard.writeText('the answer is 42')")
    student.get_by_label("Your answer").click()
    student.keyboard.press("Control+V")
    expect(student.get_by_label("Your answer")).to_have_value("the answer is 42")
    _alert(console, "PASTE")

    student.get_by_role("button", name="Full screen").click()
    student.wait_for_function("document.fullscreenElement !== null")
    student.evaluate("document.exitFullscreen()")
    _alert(console, "FULLSCREEN_EXIT")

    student.evaluate("document.querySelector('#exam-video').srcObject.getVideoTracks()[0].stop()")
    _alert(console, "CAMERA_OFF")
    kinds = [e["kind"] for e in student.evaluate("window.__recorded")]
    assert kinds == ["hidden", "paste", "fullscreen_exit", "camera_ended"], kinds


def _rows(web: Web, exam_id: str, student_id: str) -> list[dict[str, Any]]:
    found = sync_client(web.settings, "dynamodb").query(
        TableName=web.settings.names.results_table,
        KeyConditionExpression="session_id = :s AND begins_with(chunk_id, :i)",
        ExpressionAttributeValues=to_item({":s": f"{exam_id}#{student_id}", ":i": "integrity#"}),
    )
    return [from_item(item) for item in found["Items"]]


def test_twenty_seconds_offline_every_event_arrives_in_order_once(
    web: Web, launch: Callable[..., Any], camera_file: Callable[[str], Path]
) -> None:
    browser = launch(camera=camera_file("center_focus.mp4"))
    console, context, student = _exam(web, browser, "Integrity - network cut", {"LEFT_EXAM": 30})
    exam_id = console.locator("#student-link").get_attribute("href").rsplit("exam=", 1)[1]  # type: ignore[union-attr]
    context.grant_permissions(CLIPBOARD, origin=web.url)
    student.evaluate("navigator.clipboard.writeText('x')")
    answer = student.get_by_label("Your answer")
    answer.click()
    student.keyboard.press("Control+V")  # one event sent before the cut
    for _ in poll("the first event sent", 30):
        if student.evaluate("window.__sent.length") >= 1:
            break

    context.set_offline(True)
    cut = time.monotonic()
    for _ in range(3):
        answer.click()
        student.keyboard.press("Control+V")
    _away(context, student, 1.0)
    answer.click(button="right")  # a context menu in the exam area
    for _ in poll("20 s offline with the events kept on the student's computer", 40):
        waiting = int(student.locator("#integrity-status").get_attribute("data-waiting") or 0)
        if time.monotonic() - cut >= OFFLINE_SECONDS and waiting >= 5:
            break
    assert student.evaluate("window.__sent.length") == 1, "nothing can be sent while offline"
    context.set_offline(False)
    back = time.monotonic()

    recorded = student.evaluate("window.__recorded")
    for _ in poll("every kept event sent after the network came back", 60):
        recorded = student.evaluate("window.__recorded")
        rows = _rows(web, exam_id, web.ids["student"])
        if len(rows) >= len(recorded) and student.evaluate("window.__sent.length") == len(recorded):
            break
    print(
        f"{len(recorded)} events, all written {time.monotonic() - back:.1f} s after the cut ended"
    )
    kinds = [e["kind"] for e in recorded]
    assert kinds[:5] == ["paste", "paste", "paste", "paste", "hidden"], kinds
    assert "contextmenu" in kinds and "offline" in kinds
    offline = next(e for e in recorded if e["kind"] == "offline")
    assert offline["duration_ms"] >= OFFLINE_SECONDS * 1000
    sent = student.evaluate("window.__sent")
    assert sent == sorted(sent) == list(range(len(recorded))), "sent in order, each once"
    by_id = {r["event_id"]: r for r in rows}
    assert len(rows) == len(by_id) == len(recorded), "none twice, none lost"
    assert sorted(by_id) == sorted(e["event_id"] for e in recorded)
    assert [by_id[e["event_id"]]["sequence"] for e in recorded] == list(range(len(recorded)))
    written = [by_id[e["event_id"]]["processed_at"] for e in recorded]
    assert written == sorted(written), "written in the order they happened"

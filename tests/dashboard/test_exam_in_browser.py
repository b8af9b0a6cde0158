"""An exam in two browser contexts: a student records and uploads, the proctor sees and acts.

The student's camera is Chromium's fake device playing ``center_focus.mp4`` (a man who
is not Obama) while the student registers ``obama.jpg``: an impostor. The console must
show the student, then the FACE_MISMATCH alert with its evidence frame and chunk within
30 s of the upload of the chunk that raised it; confirming it must reach the report. The
student's page names what each rule asks, keeps the proctor's messages and says when the
exam has ended.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import pytest
from playwright.sync_api import expect

from infrastructure.local import sign_in
from proctoring.rules.policy import INTEGRITY_RULES, RULE_NAMES
from tests.conftest import DATA
from tests.dashboard.conftest import PEOPLE, Screenshot, Web
from tests.dashboard.pages import (
    accepted,
    api,
    chunk_keys,
    create_and_start_exam,
    get_chunk,
    proctor_console,
    student_page,
    upload_check,
    uploaded,
)
from tests.lambdas.api.conftest import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ALERT_WITHIN_SECONDS = 30.0
RECORDING_BITS_PER_SECOND = 600_000  # recorder.js: what one source's upload must keep up with
_SEQUENCE = re.compile(r"/camera/(\d+)_\d+\.webm$")


def decoded_frames(data: bytes) -> tuple[int, int, int]:
    """(frames, width, height) of a chunk decoded on its own."""
    with av.open(io.BytesIO(data)) as container:
        frames = [f for f in container.decode(video=0)]
    return len(frames), frames[0].width, frames[0].height


def test_impostor_recorded_uploaded_and_flagged_on_the_console(
    web: Web,
    launch: Callable[..., Any],
    camera_file: Callable[[str], Path],
    screenshot: Screenshot,
) -> None:
    browser = launch(camera=camera_file("center_focus.mp4"))
    proctor_token = sign_in(web.settings, web.emails["proctor"], PASSWORD)["IdToken"]
    _, console = proctor_console(browser, web.url, web.emails["proctor"])
    exam_id = create_and_start_exam(console, "Algebra I - midterm")
    student_id = web.ids["student"]
    _, student = student_page(
        browser, web.url, exam_id, web.emails["student"], photo=DATA / "faces/obama.jpg"
    )

    # The upload check times a payload to an endpoint that only receives it: on loopback it
    # is far above what recording needs (the old check, timed with the face check, was not).
    state, bits = upload_check(student)
    print(f"upload check on the local stack: {bits / 1e6:.1f} Mbit/s")
    assert state == "ok"
    assert bits > 5 * RECORDING_BITS_PER_SECOND

    card = console.locator(f'#grid [data-student="{student_id}"]')
    expect(card).to_contain_text(PEOPLE["student"][2], timeout=15_000)
    feed_item = console.locator('#feed li[data-type="FACE_MISMATCH"]')
    expect(feed_item).to_be_visible(timeout=120_000)
    shown_at = datetime.now(UTC)

    (alert,) = [
        a
        for a in api(web.url, proctor_token, f"/exams/{exam_id}/alerts")["alerts"]
        if a["type"] == "FACE_MISMATCH"
    ]
    assert alert["student_id"] == student_id
    results = api(web.url, proctor_token, f"/exams/{exam_id}/results?student_id={student_id}")
    (raising,) = [r for r in results["results"] if r["sequence"] == alert["sequence"]]
    latency = (shown_at - datetime.fromisoformat(raising["uploaded_at"])).total_seconds()
    print(f"FACE_MISMATCH on the console {latency:.1f} s after its chunk's upload")
    assert latency < ALERT_WITHIN_SECONDS

    expect(card.locator("img")).to_be_visible()
    expect(card).to_contain_text("FACE_MISMATCH")
    screenshot(console, "console")

    feed_item.get_by_role("button").click()
    dialog = console.locator("#alert-view")
    expect(dialog).to_be_visible()
    console.wait_for_function(
        "() => { const i = document.querySelector('#evidence-frame');"
        " return i.complete && i.naturalWidth > 0 }"
    )
    console.wait_for_function("() => document.querySelector('#evidence-video').readyState >= 2")
    # the registered photo beside the evidence frame, the face the rule saw boxed on the frame
    console.wait_for_function(
        "() => { const i = document.querySelector('#registered-photo');"
        " return i.complete && i.naturalWidth > 0 }"
    )
    box = dialog.locator("#evidence-boxes .face-box").first
    expect(box).to_be_visible()
    frame_box = dialog.locator("#evidence-frame").bounding_box()
    face_box = box.bounding_box()
    assert frame_box and face_box
    assert frame_box["x"] <= face_box["x"] and face_box["x"] + face_box["width"] <= (
        frame_box["x"] + frame_box["width"] + 1
    )  # drawn on the frame
    expect(dialog.locator("#alert-numbers")).to_contain_text("identity distance")
    expect(dialog.locator("#alert-raw summary")).to_contain_text("Every number of the evidence")
    expect(dialog.locator("#alert-evidence")).to_be_hidden()  # folded away
    expect(dialog.locator("#alert-who")).to_contain_text(PEOPLE["student"][2])
    screenshot(console, "console-alert")
    dialog.get_by_label("Confirm (misconduct)").check()
    dialog.get_by_label("Note").fill("not the registered student")
    dialog.get_by_role("button", name="Save", exact=True).click()
    expect(dialog.locator("#review-status")).to_have_text("Saved: confirmed misconduct.")

    console.keyboard.press("Escape")
    card.get_by_role("button").click()
    student_view = console.locator("#student-view")
    expect(student_view.locator("#timeline tr").first).to_be_visible()
    # one time axis: the chunks drawn, the alert a button over its span; seeking with the
    # keyboard says what the camera showed there and selects that chunk's row
    strip = student_view.locator("#student-strip")
    expect(strip.locator('[data-lane="video"] .strip-mark').first).to_be_visible()
    mark = strip.locator(f'button[data-alert="{alert["alert_id"]}"]')
    expect(mark).to_have_attribute("aria-label", re.compile(r"^FACE_MISMATCH, .*, confirmed$"))
    strip.get_by_label("Seek the timeline").focus()
    console.keyboard.press("End")
    expect(strip.locator(".strip-readout")).to_contain_text(re.compile(r"camera chunk \d+: "))
    expect(student_view.locator("#timeline tr.current")).to_have_count(1)
    screenshot(console, "console-student")
    mark.click()
    expect(dialog).to_be_visible()
    expect(dialog.locator("#alert-who")).to_contain_text(PEOPLE["student"][2])
    console.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(student_view).to_be_visible()
    student_view.get_by_label("Message to the student").fill(
        "Please stay alone in front of the camera."
    )
    student_view.get_by_role("button", name="Send").click()
    warning = student.locator("#warning")
    expect(warning).to_have_text(
        "Message from your proctor: Please stay alone in front of the camera.", timeout=15_000
    )
    student.get_by_label("Message").fill("Understood.")
    student.get_by_role("button", name="Send").click()
    expect(student_view.locator("#student-chat .theirs .text")).to_have_text(
        "Understood.", timeout=15_000
    )  # the console's live stream carries the reply

    report = api(web.url, proctor_token, f"/exams/{exam_id}/report")
    (row,) = [s for s in report["students"] if s["student_id"] == student_id]
    (reported,) = [a for a in row["alerts"] if a["alert_id"] == alert["alert_id"]]
    assert reported["status"] == "confirmed"
    assert reported["reviews"][-1]["note"] == "not the registered student"

    expect(student.locator("#upload-status")).to_contain_text("uploaded")
    screenshot(student, "student")
    count = uploaded(student)
    assert count >= 2
    keys = chunk_keys(web.settings, exam_id, student_id)
    sequences = [int(_SEQUENCE.search(k).group(1)) for k in keys]  # type: ignore[union-attr]
    assert sequences == list(range(len(keys))), "every chunk, in sequence, none missing"
    assert accepted(student)[: len(keys)] == keys, "uploaded in order"
    for key in keys:
        frames, width, height = decoded_frames(get_chunk(web.settings, key))
        # 5 s of the 15 fps camera, each chunk decoded on its own from its first byte
        assert frames >= 50 and width >= 320 and height >= 240, (key, frames, width, height)

    # the student's page: what each enabled rule asks (the default policy: all of them), in
    # words; every message kept; after Stop it says the exam has ended
    rules = student.locator("#rule-list li")
    expect(rules).to_have_count(len(RULE_NAMES) + len(INTEGRITY_RULES))
    expect(student.locator('#rule-list [data-rule="FACE_NOT_CLEAR"]')).to_have_text(
        re.compile(r"^Keep your face clearly visible")
    )
    assert "FACE_NOT_CLEAR" not in student.locator("#rule-list").inner_text()
    student_view.get_by_label("Message to the student").fill("Ten minutes left.")
    student_view.get_by_role("button", name="Send").click()
    history = student.locator("#notice-history li")
    expect(history).to_have_count(2, timeout=15_000)
    expect(history.nth(0)).to_contain_text("Ten minutes left.")
    expect(history.nth(1)).to_contain_text("Please stay alone in front of the camera.")
    console.keyboard.press("Escape")
    console.get_by_role("button", name="Stop exam").click()
    expect(student.locator("#exam-heading")).to_have_text("The exam has ended", timeout=15_000)
    expect(student.locator("#recording")).to_be_hidden()

"""An exam that asks for the screen: the student must share it, and both sources are
recorded in self-contained chunks, uploaded and analysed (the screen gets no face rules)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest

from infrastructure.local import sign_in
from proctoring.aws import sync_client
from proctoring.enrolment import frame_key
from tests.conftest import poll
from tests.dashboard.conftest import Web
from tests.dashboard.pages import (
    api,
    chunk_keys,
    create_and_start_exam,
    get_chunk,
    proctor_console,
    student_page,
)
from tests.lambdas.api.conftest import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_an_exam_that_asks_for_the_screen_records_camera_and_screen(
    web: Web, launch: Callable[..., Any], camera_file: Callable[[str], Path]
) -> None:
    browser = launch(camera=camera_file("center_focus.mp4"))
    _, console = proctor_console(browser, web.url, web.emails["proctor"])
    exam_id = create_and_start_exam(console, "Programming - screen recorded", screen=True)
    student_id = web.ids["student"]
    student_page(browser, web.url, exam_id, web.emails["student"], screen=True)
    token = sign_in(web.settings, web.emails["proctor"], PASSWORD)["IdToken"]
    for _ in poll("two chunks of each source analysed", 60):
        rows = api(web.url, token, f"/exams/{exam_id}/results?student_id={student_id}")["results"]
        done = {
            source: sum(1 for r in rows if r["source"] == source) for source in ("camera", "screen")
        }
        if min(done.values()) >= 2:
            break
    assert {r["status"] for r in rows} == {"ok"}
    # the photo was taken with the camera: more views of it were enrolled beside it, the last
    # one kept to start the identity schedule, and the student (the same man throughout) is
    # never taken for someone else
    face = sync_client(web.settings, "dynamodb").get_item(
        TableName=web.settings.names.faces_table,
        Key={"exam_id": {"S": exam_id}, "student_id": {"S": student_id}},
    )["Item"]
    assert len(face["frames"]["L"]) >= 2
    camera = [r for r in rows if r["source"] == "camera"]
    assert {r["identity"] for r in camera} <= {"match", "unchecked"}
    s3 = sync_client(web.settings, "s3")  # his first chunks' face is the kept frame's: no search
    s3.head_object(Bucket=web.settings.names.frames_bucket, Key=frame_key(exam_id, student_id))
    sizes = {}
    for source in ("camera", "screen"):
        for key in chunk_keys(web.settings, exam_id, student_id, source)[:2]:
            with av.open(io.BytesIO(get_chunk(web.settings, key))) as container:
                frame = next(container.decode(video=0))  # each chunk decodes alone
            sizes.setdefault(source, set()).add((frame.width, frame.height))
    (screen,) = sizes["screen"]
    assert screen[0] > screen[1] and sizes["screen"] != sizes["camera"]  # the (wide) screen

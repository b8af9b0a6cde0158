"""Text that users type - a student's name, a chat message, a review note - is shown as
text on the console, never run or parsed as HTML."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from infrastructure.local import sign_in
from proctoring.aws import async_clients
from proctoring.storage import Tables
from tests.dashboard.conftest import XSS_NAME, Web
from tests.dashboard.pages import proctor_console
from tests.lambdas.api.conftest import PASSWORD

pytestmark = pytest.mark.browser
CHAT = "<script>window.__xss='chat'</script><img src=x onerror=\"window.__xss='chat'\">hi"
NOTE = "<img src=x onerror=\"window.__xss='note'\"><b>checked</b>"
ALERT = "NO_FACE-00000000000000bb"


def _as(web: Web, who: str) -> Callable[..., requests.Response]:
    token = sign_in(web.settings, web.emails[who], PASSWORD)["IdToken"]

    def call(method: str, path: str, **kw: Any) -> requests.Response:
        response = requests.request(
            method, web.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw
        )
        assert response.ok, response.text
        return response

    return call


def test_names_chat_and_notes_render_as_text(web: Web, launch: Callable[..., Any]) -> None:
    proctor, eve = _as(web, "proctor"), _as(web, "eve")
    exam_id = proctor("POST", "/exams", json={"title": "<i>Title</i>"}).json()["exam_id"]
    proctor("POST", f"/exams/{exam_id}/start")
    eve("POST", f"/exams/{exam_id}/join")
    eve_id = web.ids["eve"]
    eve("POST", f"/exams/{exam_id}/students/{eve_id}/messages", json={"text": CHAT})

    async def alert() -> None:
        async with async_clients(web.settings) as clients:
            await Tables(clients.dynamodb, web.settings.names).create_alert(
                {"exam_id": exam_id, "alert_id": ALERT, "student_id": eve_id, "type": "NO_FACE",
                 "severity": "high", "status": "open", "sequence": 2, "first_sequence": 1,
                 "frame_key": f"frames/{exam_id}/{eve_id}/camera/000002.jpg"}
            )  # fmt: skip

    asyncio.run(alert())

    _, page = proctor_console(launch(), web.url, web.emails["proctor"])
    page.goto(f"{web.url}/console.html?exam={exam_id}")
    expect(page.locator("#exam-heading")).to_have_text("<i>Title</i>")
    card = page.locator(f'#grid [data-student="{eve_id}"]')
    expect(card.locator(".name")).to_have_text(XSS_NAME)
    assert card.locator("img").count() == 0  # no frame yet, and the name made none

    card.get_by_role("button").click()
    chat = page.locator("#student-chat")
    expect(chat.locator(".text")).to_have_text(CHAT)
    expect(chat.locator(".who")).to_have_text(XSS_NAME)
    assert chat.locator("script, img").count() == 0
    page.keyboard.press("Escape")  # the dialog closes from the keyboard
    expect(page.locator("#student-view")).not_to_be_visible()

    page.locator(f'#feed [data-alert="{ALERT}"] button').click()
    dialog = page.locator("#alert-view")
    expect(dialog.locator("#alert-who")).to_contain_text(XSS_NAME)
    dialog.get_by_label("Dismiss (false alarm)").check()
    dialog.get_by_label("Note").fill(NOTE)
    dialog.get_by_role("button", name="Save", exact=True).click()
    expect(dialog.locator("#alert-reviews .note")).to_have_text(NOTE)
    assert dialog.locator("#alert-reviews img, #alert-reviews b").count() == 0
    assert page.evaluate("window.__xss") is None

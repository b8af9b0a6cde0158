"""What the browser tests do on the pages, as a user would: sign in, click, read."""

from __future__ import annotations

import re
from typing import Any

import requests
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.lambdas.api.conftest import PASSWORD


def sign_in(page: Page, email: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def proctor_console(browser: Browser, url: str, email: str) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{url}/console.html")
    sign_in(page, email)
    expect(page.get_by_role("heading", name="Your exams")).to_be_visible()
    return context, page


def create_and_start_exam(page: Page, title: str, *, screen: bool = False) -> str:
    """Create an exam in the console and start it; its id from the student link."""
    page.get_by_label("New exam title").fill(title)
    if screen:
        page.get_by_label("record screens").check()
    page.get_by_role("button", name="Create exam").click()
    page.get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title)).to_be_visible()
    page.get_by_role("button", name="Start exam").click()
    expect(page.locator("#exam-status")).to_have_text("started")
    link = page.locator("#student-link").get_attribute("href") or ""
    return link.rsplit("exam=", 1)[1]


def student_page(
    browser: Browser,
    url: str,
    exam_id: str,
    email: str,
    *,
    photo: Any = None,
    screen: bool = False,
) -> tuple[BrowserContext, Page]:
    """A student through consent, system check and registration into the exam view.

    ``accepted(page)`` lists the chunk keys S3 accepted, in the order the page saw them.
    """
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    # the page announces each chunk S3 accepted (outbox.js); kept in the order it happened
    page.add_init_script(
        "window.__uploads = [];"
        "addEventListener('proctoring:uploaded', (e) => window.__uploads.push(e.detail.key));"
    )
    page.goto(f"{url}/student.html?exam={exam_id}")
    sign_in(page, email)
    expect(page.get_by_role("heading", name="Consent to proctoring")).to_be_visible()
    expect(page.locator("#recording")).to_be_hidden()  # nothing is recorded before consent
    page.get_by_label("I have read the policy").check()
    page.get_by_role("button", name="Agree and continue").click()
    expect(page.get_by_role("heading", name="System check")).to_be_visible()
    expect(page.locator("#check-camera")).to_contain_text("✓")
    # the upload check's figure is read before going on, as a student would
    expect(page.locator("#check-upload")).to_have_attribute("data-state", re.compile("."))
    if screen:
        page.get_by_role("button", name="Share my screen").click()
        expect(page.locator("#check-screen")).to_contain_text("✓")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Registration photo")).to_be_visible()
    if photo is None:
        page.get_by_role("button", name="Take photo with the camera").click()
    else:
        page.get_by_label("Or choose a photo").set_input_files(str(photo))
    expect(page.get_by_role("heading", name="Exam in progress")).to_be_visible(timeout=60_000)
    expect(page.locator("#recording")).to_be_visible()
    return context, page


def exam_in_progress(
    browser: Browser, url: str, emails: list[str], title: str
) -> tuple[Page, str, list[Page]]:
    """(the console, the exam's id, each student's page): the proctor (``emails[0]``) starts
    an exam and each student goes through to its exam view."""
    _, console = proctor_console(browser, url, emails[0])
    exam_id = create_and_start_exam(console, title)
    students = [student_page(browser, url, exam_id, email)[1] for email in emails[1:]]
    return console, exam_id, students


def upload_check(page: Page) -> tuple[str, float]:
    """(state, bits per second) of the system check's upload-speed line."""
    line = page.locator("#check-upload")
    return line.get_attribute("data-state") or "", float(
        line.get_attribute("data-bits-per-second") or 0
    )


def accepted(page: Page) -> list[str]:
    keys: list[str] = page.evaluate("window.__uploads")
    return keys


def uploaded(page: Page) -> int:
    return int(page.locator("#upload-status").get_attribute("data-uploaded") or 0)


def chunk_keys(settings: Any, exam_id: str, student_id: str, source: str = "camera") -> list[str]:
    from proctoring.aws import sync_client

    s3 = sync_client(settings, "s3")
    prefix = f"chunks/{exam_id}/{student_id}/{source}/"
    found = s3.list_objects_v2(Bucket=settings.names.chunks_bucket, Prefix=prefix)
    return sorted(o["Key"] for o in found.get("Contents", []))


def get_chunk(settings: Any, key: str) -> bytes:
    from proctoring.aws import sync_client

    body: bytes = (
        sync_client(settings, "s3")
        .get_object(Bucket=settings.names.chunks_bucket, Key=key)["Body"]
        .read()
    )
    return body


def api(url: str, token: str, path: str) -> Any:
    response = requests.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    response.raise_for_status()
    return response.json()

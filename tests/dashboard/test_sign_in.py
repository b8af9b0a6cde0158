"""Signing in on the pages: Cognito's InitiateAuth over fetch, clear refusals, and a token
renewed before it ends, so an exam longer than the token's hour goes on; a student whose
connection uploads slower than recording needs is warned at the system check, after a
consent text that says what is recorded, for how long and whom to ask."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from cli.serving import way_in
from tests.dashboard.conftest import Web
from tests.dashboard.pages import api, sign_in, upload_check
from tests.lambdas.api.conftest import PASSWORD

pytestmark = pytest.mark.browser
_SESSION = "JSON.parse(sessionStorage.getItem('proctoring.session'))"
_TOKEN = f"{_SESSION}.token"
SLOW_UPLOAD_BYTES_PER_SECOND = 50_000  # 0.4 Mbit/s: below one source's 0.6


def test_wrong_password_wrong_group_and_a_renewed_token(
    web: Web, launch: Callable[..., Any]
) -> None:
    browser = launch()
    page = browser.new_context().new_page()
    page.goto(f"{web.url}/console.html")
    page.get_by_label("Email").fill(web.emails["proctor"])
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-status")).to_have_text("Wrong email or password.")

    sign_in(page, web.emails["student"])  # a student on the proctor's console
    expect(page.locator("#signin-status")).to_contain_text("for the proctor group")

    sign_in(page, web.emails["proctor"])
    expect(page.get_by_role("heading", name="Your exams")).to_be_visible()
    first = page.evaluate(_TOKEN)
    # The id token ends in 2 minutes (as after 58 minutes of an exam): the next call renews it.
    page.evaluate(
        "() => { const s = JSON.parse(sessionStorage.getItem('proctoring.session'));"
        " s.claims.exp = Math.floor(Date.now() / 1000) + 120;"
        " sessionStorage.setItem('proctoring.session', JSON.stringify(s)) }"
    )
    page.get_by_label("New exam title").fill("After renewal")
    page.get_by_role("button", name="Create exam").click()
    expect(page.get_by_role("link", name="After renewal")).to_be_visible()
    renewed = page.evaluate(_TOKEN)
    assert renewed != first
    assert page.evaluate(f"{_SESSION}.claims.exp * 1000 - Date.now()") > 30 * 60_000

    # A student on a slow uplink (Chromium's own throttling through CDP) joins that exam:
    # the system check measures it and says it is below what recording needs.
    (exam,) = [e for e in api(web.url, renewed, "/exams")["exams"] if e["title"] == "After renewal"]
    student = browser.new_context().new_page()
    cdp = student.context.new_cdp_session(student)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": SLOW_UPLOAD_BYTES_PER_SECOND,
        },
    )
    # The way in `proctor serve --user EMAIL:student` prints: the page and the password
    printed = way_in(web.url, web.emails["student"], "student", PASSWORD, token="")
    page_url = re.search(r"open (\S+)", printed)
    password = re.search(r"password (\S+)$", printed)
    assert page_url and password, printed
    student.goto(page_url[1].replace("<exam-id>", exam["exam_id"]))
    student.get_by_label("Email").fill(web.emails["student"])
    student.get_by_label("Password").fill(password[1])
    student.get_by_role("button", name="Sign in").click()
    expect(student.get_by_role("heading", name="Consent to proctoring")).to_be_visible()
    # The consent text names every signal recorded, how long it is kept, whom to ask, how to
    # decline and how to ask for accommodations (retention and contact: the server's settings).
    policy = student.get_by_label("Proctoring policy")
    for said in (
        "Camera frames",
        "Face identity checks",
        "Head pose and gaze",
        "Browser events",
        f"kept for {web.settings.retention_days} days",
        "To decline",
        "Accommodations",
    ):
        expect(policy).to_contain_text(said)
    expect(policy.locator("#consent-contact")).to_contain_text(web.settings.privacy_contact)
    expect(policy.locator("#consent-microphone")).to_be_hidden()  # this exam records none
    student.get_by_label("I have read the policy").check()
    student.get_by_role("button", name="Agree and continue").click()
    line = student.locator("#check-upload")
    expect(line).to_contain_text("below the 0.6 Mbit/s recording needs", timeout=30_000)
    state, bits = upload_check(student)
    print(f"upload check throttled to 0.4 Mbit/s: {bits / 1e6:.2f} Mbit/s")
    assert state == "slow"
    assert 0.2e6 < bits < 0.6e6

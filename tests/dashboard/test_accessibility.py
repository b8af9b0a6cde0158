"""The pages work from the keyboard, every control has a label, and text has enough contrast."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from infrastructure.local import sign_in
from tests.dashboard.conftest import Web
from tests.dashboard.pages import proctor_console
from tests.lambdas.api.conftest import PASSWORD

pytestmark = pytest.mark.browser

# Controls without a label, and visible text under WCAG AA contrast (4.5:1) on its background.
_AUDIT = """() => {
  const unlabelled = [...document.querySelectorAll('input, textarea, select, button, video, img')]
    .filter((e) => e.type !== 'hidden' && e.getClientRects().length > 0)
    .filter((e) => !((e.labels && e.labels.length) || e.getAttribute('aria-label')
      || e.getAttribute('alt') || (e.textContent || '').trim()))
    .map((e) => e.outerHTML.slice(0, 80));
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (e) => { for (; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor); if (c.length === 3 || c[3] > 0) return c; }
    return [255, 255, 255]; };
  const low = [];
  for (const e of document.querySelectorAll('body *')) {
    const text = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!e.getClientRects().length || !text) continue;
    const s = getComputedStyle(e); if (s.visibility === 'hidden' || Number(s.opacity) < 1) continue;
    const [a, b] = [lum(rgb(s.color)), lum(background(e))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const what = `${e.tagName} "${e.textContent.trim().slice(0, 30)}"`;
    if (ratio < 4.5) low.push(`${what} ${ratio.toFixed(2)}`);
  }
  return { unlabelled, low };
}"""


def _audit(page: Page) -> None:
    found: dict[str, list[str]] = page.evaluate(_AUDIT)
    assert found == {"unlabelled": [], "low": []}


def test_the_audit_finds_an_unlabelled_control_and_pale_text(
    web: Web, launch: Callable[..., Any]
) -> None:
    page = launch().new_context().new_page()
    page.goto(f"{web.url}/index.html")
    page.evaluate(
        "() => { const m = document.querySelector('main');"
        " m.append(Object.assign(document.createElement('input'), {type: 'text'}));"
        " m.append(Object.assign(document.createElement('p'), {textContent: 'pale',"
        " style: 'color: #aaa'})) }"
    )
    found = page.evaluate(_AUDIT)
    assert len(found["unlabelled"]) == 1 and found["low"] == ['P "pale" 2.32']


def test_console_and_student_page_are_labelled_contrasted_and_keyboard_usable(
    web: Web, launch: Callable[..., Any]
) -> None:
    browser = launch()
    student = browser.new_context().new_page()
    student.goto(f"{web.url}/student.html?exam=nothing-yet")
    expect(student.get_by_role("heading", name="Sign in")).to_be_visible()
    _audit(student)

    _, page = proctor_console(browser, web.url, web.emails["proctor"])
    _audit(page)
    # From the keyboard only: create an exam, open it, start it.
    page.get_by_label("New exam title").focus()
    page.keyboard.type("Keyboard exam")
    page.keyboard.press("Enter")
    link = page.get_by_role("link", name="Keyboard exam")
    link.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Keyboard exam")).to_be_focused()
    page.keyboard.press("Tab")  # the heading is first; then the toolbar's next control
    for _ in range(6):
        if page.evaluate("document.activeElement.id") == "start-stop":
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#exam-status")).to_have_text("started")
    _audit(page)
    exams = requests.get(
        f"{web.url}/exams",
        headers={
            "Authorization": "Bearer "
            + sign_in(web.settings, web.emails["proctor"], PASSWORD)["IdToken"]
        },
        timeout=10,
    ).json()["exams"]
    assert [e["status"] for e in exams if e["title"] == "Keyboard exam"] == ["started"]

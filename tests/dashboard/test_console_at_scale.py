"""The proctor console at 200 students, in headless Chromium (issue 21).

200 students of one exam are seeded as the stores hold them (enrolments, a chunk's result
row and its frame each, alerts in every review state) instead of replaying 200 students of
video; the console reads them through the API and the live stream as it would a real exam.
The console's clock is injected (``window.__proctorClock``) and frozen at the seeding time:
the test moves it, so "last seen" and OFFLINE are checked without sleeping.

One test walks the triage a proctor does: the counts and the tab title, the flagged filter
(exactly the students with open alerts), the frames (no download for an unchanged frame over
two polls, one for a changed one), an alert event (no request at all), OFFLINE within the
policy's tolerance and cleared by the next chunk, keyboard only from the next unreviewed
alert to "confirm, save and next", the outcome after a reload, and the phone width.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from PIL import Image
from playwright.sync_api import Page, Request, expect

from infrastructure.local import add_user, sign_in
from proctoring.aws import sync_client
from proctoring.exams import message_item
from proctoring.settings import Settings
from proctoring.storage import to_item
from tests.conftest import DATA, require_data
from tests.dashboard.conftest import Screenshot
from tests.dashboard.pages import proctor_console
from tests.dashboard.test_accessibility import _audit
from tests.lambdas.api.conftest import PASSWORD, ServerThread, identity_settings

pytestmark = [pytest.mark.slow, pytest.mark.browser]

STUDENTS = 200
PROCTOR = "proctor@example.edu"
TITLE = "Statistics - final"
# (student index, type, severity, status): 12 students flagged, others reviewed already
ALERTS = [(i, "NO_FACE", "medium", "open") for i in (3, 17, 45, 88, 120)]
ALERTS += [(i, "FACE_MISMATCH", "high", "open") for i in (9, 60, 150)]
ALERTS += [(i, "LOOKING_AWAY", "low", "open") for i in (30, 77, 140, 199)]
ALERTS += [(5, "MULTIPLE_FACES", "high", "confirmed"), (6, "NO_FACE", "medium", "dismissed")]
ALERTS += [(9, "LOOKING_AWAY", "low", "dismissed")]  # flagged still: FACE_MISMATCH is open
STOPPED = 42  # the student whose chunks stop (not flagged)
CLOCK = "window.__proctorClock = { t: %d, now() { return this.t; } };"


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


class Stack:
    """The seeded exam: writes rows as the consumer, the forwarder and the API do."""

    def __init__(self, settings: Settings, exam_id: str, start: datetime) -> None:
        self.settings, self.exam_id, self.start = settings, exam_id, start
        self.db = sync_client(settings, "dynamodb")
        self.s3 = sync_client(settings, "s3")
        self.ids = [f"stu-{n:03d}" for n in range(STUDENTS)]
        faces = sorted((DATA / "faces").glob("*.jp*g"))
        self.frames = [_jpeg(face) for face in faces]

    def batch(self, table: str, items: list[dict[str, Any]]) -> None:
        for at in range(0, len(items), 25):
            requests_ = [{"PutRequest": {"Item": to_item(i)}} for i in items[at : at + 25]]
            pending: dict[str, Any] = {table: requests_}
            while pending:
                pending = self.db.batch_write_item(RequestItems=pending).get("UnprocessedItems")

    def arrive(self, rows: list[dict[str, Any]]) -> None:
        """Chunks' result rows written, and each student's session item with the newest one
        as what the tile shows (``latest``, ``consumer.latest``), as the consumer does."""
        self.batch(self.settings.names.results_table, rows)
        newest = {row["student_id"]: row for row in sorted(rows, key=lambda r: r["sequence"])}
        sessions = [
            {"exam_id": self.exam_id, "student_id": student, "version": 1, "risk": row["risk"],
             "latest": {k: row[k] for k in ("source", "sequence", "status", "faces", "identity",
                                            "captured_at", "uploaded_at", "processed_at",
                                            "risk", "frame_key")}}
            for student, row in newest.items()
        ]  # fmt: skip
        self.batch(self.settings.names.sessions_table, sessions)

    def chunk(self, n: int, sequence: int, at: datetime) -> dict[str, Any]:
        """Student ``n``'s chunk ``sequence``, arrived ``at``, its frame in the frames bucket."""
        student = self.ids[n]
        key = f"frames/{self.exam_id}/{student}/camera/{sequence:06d}.jpg"
        frame = self.frames[(n + sequence) % len(self.frames)]
        self.s3.put_object(Bucket=self.settings.names.frames_bucket, Key=key, Body=frame)
        return {
            "session_id": f"{self.exam_id}#{student}", "chunk_id": f"camera#{sequence:06d}",
            "exam_id": self.exam_id, "student_id": student, "source": "camera",
            "sequence": sequence, "status": "ok", "faces": 1, "identity": "match",
            "captured_at": _iso(at - timedelta(seconds=5)), "uploaded_at": _iso(at),
            "processed_at": _iso(at), "frame_key": key, "risk": 0.0,
        }  # fmt: skip

    def seed(self) -> None:
        names = self.settings.names
        joined = _iso(self.start - timedelta(minutes=5))
        consent = {"version": self.settings.consent_version, "at": joined}
        self.batch(
            names.exams_table,
            [
                {"exam_id": self.exam_id, "item": f"student#{s}", "student_id": s,
                 "joined_at": joined, "name": f"Student {n:03d}", "consent": consent,
                 "registered_at": joined}
                for n, s in enumerate(self.ids)
            ],
        )  # fmt: skip
        # Every student's chunk 0 arrived at the start; the others' chunk 1 arrives 60 s later
        # (what they send while the test moves the clock), the stopped student's never does.
        rows = [self.chunk(n, 0, self.start) for n in range(STUDENTS)]
        later = self.start + timedelta(seconds=60)
        rows += [self.chunk(n, 1, later) for n in range(STUDENTS) if n != STOPPED]
        self.arrive(rows)
        self.batch(names.alerts_table, [self.alert(*a) for a in ALERTS])

    def alert(self, n: int, kind: str, severity: str, status: str) -> dict[str, Any]:
        created = self.start - timedelta(seconds=60 - n * 0.1)
        alert = {
            "exam_id": self.exam_id, "alert_id": f"{kind}-{n:016d}", "student_id": self.ids[n],
            "type": kind, "severity": severity, "status": status, "source": "camera",
            "first_sequence": 0, "sequence": 0, "created_at": _iso(created),
            "frame_key": f"frames/{self.exam_id}/{self.ids[n]}/camera/000000.jpg",
            "published": True,
        }  # fmt: skip
        if status != "open":
            decision = {"confirmed": "confirm", "dismissed": "dismiss"}[status]
            alert["reviews"] = [{"decision": decision, "note": "", "by": "p", "at": _iso(created)}]
        return alert

    def live_alert(self, n: int) -> dict[str, Any]:
        """A new alert as the consumer writes it and the forwarder posts it (the SSE stream)."""
        alert = self.alert(n, "NO_FACE", "medium", "open") | {"alert_id": f"NO_FACE-live{n:012d}"}
        self.db.put_item(TableName=self.settings.names.alerts_table, Item=to_item(alert))
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        message = {
            "exam_id": self.exam_id, "item": message_item(at, f"alert-{alert['alert_id']}"),
            "message_id": f"alert-{alert['alert_id']}", "kind": "alert",
            "student_id": alert["student_id"], "sender_id": "proctoring", "created_at": at,
            "alert": {k: alert[k] for k in ("alert_id", "student_id", "type", "severity",
                                            "source", "sequence", "created_at")},
        }  # fmt: skip
        self.db.put_item(TableName=self.settings.names.exams_table, Item=to_item(message))
        return alert


def _jpeg(path: Any) -> bytes:
    image = Image.open(path).convert("RGB")
    image.thumbnail((320, 240))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


@pytest.fixture
def scale(settings: Settings) -> Iterator[tuple[Settings, str]]:
    """The API and the pages (no pipeline: the rows are seeded), a proctor signed up."""
    require_data()
    settings = identity_settings(settings)
    add_user(settings, PROCTOR, "proctor", PASSWORD, name="Dr. Ada Proctor")
    server = ServerThread(settings).start()
    try:
        yield settings, server.url
    finally:
        server.stop()


def _tiles(page: Page, visible: bool = True) -> set[str]:
    ids: list[str] = page.evaluate(
        "(visible) => [...document.querySelectorAll('#grid > li')]"
        ".filter((li) => li.hidden !== visible).map((li) => li.dataset.student)",
        visible,
    )
    return set(ids)


def _is_poll(request: Request) -> bool:
    """The console's roster poll (every 3 s), not a request an event caused."""
    return request.url.split("?")[0].endswith("/students")


NOTIFICATIONS = """() => {
  window.__notifications = [];
  window.Notification = class {
    static permission = "granted";
    static requestPermission() { return Promise.resolve("granted"); }
    constructor(title) { window.__notifications.push(title); }
  };
  window.__tones = 0;
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (...args) {
    window.__tones += 1;
    return start.apply(this, args);
  };
}"""
"""Desktop notifications and tones as the page makes them, counted (no desktop to show them)."""


def _count(page: Page, name: str, value: int) -> None:
    """The console's count ``name`` reads ``value`` (within expect's wait: the page is live)."""
    expect(page.locator(f'#grid-counts [data-count="{name}"] strong')).to_have_text(str(value))


def test_a_proctor_triages_200_students_from_the_console(
    scale: tuple[Settings, str], launch: Callable[..., Any], screenshot: Screenshot
) -> None:
    settings, url = scale
    token = sign_in(settings, PROCTOR, PASSWORD)["IdToken"]
    auth = {"Authorization": f"Bearer {token}"}
    exam = requests.post(f"{url}/exams", json={"title": TITLE}, headers=auth, timeout=30).json()
    exam_id = exam["exam_id"]
    assert requests.post(f"{url}/exams/{exam_id}/start", headers=auth, timeout=30).ok
    start = datetime.now(UTC)
    stack = Stack(settings, exam_id, start)
    seeded = time.monotonic()
    stack.seed()
    print(f"seeded {STUDENTS} students in {time.monotonic() - seeded:.1f} s")
    polled = time.monotonic()
    roster = requests.get(f"{url}/exams/{exam_id}/students", headers=auth, timeout=60)
    print(f"a roster poll at {STUDENTS} students: {time.monotonic() - polled:.2f} s")
    assert len(roster.json()["students"]) == STUDENTS
    flagged = {stack.ids[n] for n, _, _, status in ALERTS if status == "open"}
    open_alerts = sum(1 for *_, status in ALERTS if status == "open")

    browser = launch()
    context, page = proctor_console(browser, url, PROCTOR)
    context.add_init_script(CLOCK % _ms(start))  # frozen at the seeding time: the test moves it
    requests_seen: list[Request] = []
    page.on("request", lambda request: requests_seen.append(request))
    page.goto(f"{url}/console.html?exam={exam_id}")
    grid = page.locator("#grid")
    expect(grid.locator("> li")).to_have_count(STUDENTS, timeout=30_000)

    # counts, tab title, severity and review outcome on the tiles
    expect(page.locator("#grid-counts")).to_contain_text(f"{STUDENTS} students")
    _count(page, "flagged", len(flagged))
    _count(page, "unreviewed", open_alerts)
    _count(page, "offline", 0)
    expect(page).to_have_title(f"({open_alerts}) Console · {TITLE}")
    high = grid.locator(f'[data-student="{stack.ids[9]}"]')
    expect(high).to_have_attribute("data-severity", "high")
    expect(high.locator(".sev")).to_have_text("HIGH")
    confirmed = grid.locator(f'[data-student="{stack.ids[5]}"]')
    expect(confirmed.locator(".review")).to_have_text("confirmed: MULTIPLE_FACES")
    expect(grid.locator(f'[data-student="{stack.ids[6]}"] .review')).to_have_text("1 dismissed")
    expect(page.locator('#feed [data-status="confirmed"] .status')).to_have_text(
        "confirmed misconduct"
    )
    first = grid.locator("> li").first
    expect(first).to_have_attribute("data-severity", "high")

    # the flagged filter shows exactly the students with open alerts
    page.locator("#grid-controls").get_by_label("Show").select_option("flagged")
    expect(page.locator('#grid-counts [data-count="shown"] strong')).to_have_text(str(len(flagged)))
    assert _tiles(page) == flagged
    page.get_by_label("Search by name").fill("Student 060")
    expect(grid.locator("> li:not([hidden])")).to_have_count(1)
    assert _tiles(page) == {stack.ids[60]}
    page.get_by_label("Search by name").fill("")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#grid > li:not([hidden]) img')]"
        ".every((i) => i.complete && i.naturalWidth > 0)"
    )
    screenshot(page, "console-triage")
    _audit(page)  # every control labelled, every text at 4.5:1 (severity badges, OFFLINE, ...)

    # frames: none downloaded again over two polls; a changed frame, once
    bucket = f"/{settings.names.frames_bucket}/"

    def frames_loaded() -> list[str]:
        return [r.url for r in requests_seen if bucket in r.url]

    def next_poll() -> None:  # the console asks for the roster (every 3 s)
        with page.expect_request(_is_poll):
            pass

    loaded = len(frames_loaded())
    assert loaded >= len(flagged)  # the flagged tiles' frames, once each
    for _ in range(3):  # the third request: the second poll's answer is on the page
        next_poll()
    assert len(frames_loaded()) == loaded, "an unchanged frame was downloaded again"
    print(f"frame downloads over two polls at {STUDENTS} students: 0 (first load: {loaded})")
    changed = stack.chunk(60, 2, start + timedelta(seconds=61))
    with page.expect_request(lambda r: changed["frame_key"] in r.url, timeout=10_000):
        stack.arrive([changed])
    next_poll()
    new = frames_loaded()[loaded:]
    assert len(new) == 1 and changed["frame_key"] in new[0], new

    # an alert event: shown in the feed, the tile, the counts and the title, no request;
    # announced by a tone and a desktop notification where the proctor turned them on
    page.evaluate(NOTIFICATIONS)
    announce = page.locator("#announce")
    announce.get_by_label("Sound on new alerts").check()
    announce.get_by_label("Desktop notification").check()
    before = len(requests_seen)
    live = stack.live_alert(120)
    item = page.locator(f'#feed [data-alert="{live["alert_id"]}"]')
    expect(item).to_be_visible(timeout=10_000)
    expect(page.locator("body")).to_have_attribute("data-announced", "1")
    assert page.evaluate("window.__notifications") == ["NO_FACE: Student 120"]
    assert page.evaluate("window.__tones") >= 1
    expect(page).to_have_title(f"({open_alerts + 1}) Console · {TITLE}")
    expect(grid.locator(f'[data-student="{stack.ids[120]}"] .review')).to_have_text(
        "2 open: NO_FACE"
    )
    during = [
        r.url for r in requests_seen[before:] if not r.url.split("?")[0].endswith("/students")
    ]
    print(f"requests for one alert event: {len(during)}")
    assert during == [], during

    # OFFLINE within the policy's tolerance (2 chunks of 5 s), cleared by the next chunk
    tolerance = 2 * settings.chunk_seconds
    stopped = grid.locator(f'[data-student="{stack.ids[STOPPED]}"]')
    page.locator("#grid-controls").get_by_label("Show").select_option("all")
    page.evaluate(f"window.__proctorClock.t = {_ms(start) + (tolerance - 1) * 1000}")
    # (the server's clock against the browser's is measured to within the answer's latency)
    expect(stopped.locator(".seen")).to_have_text(re.compile(r"^last chunk [89] s ago$"))
    expect(stopped).to_have_attribute("data-offline", "false")
    _count(page, "offline", 0)
    page.evaluate(f"window.__proctorClock.t = {_ms(start) + (tolerance + 1) * 1000}")
    expect(stopped).to_have_attribute("data-offline", "true")  # the next repaint (every 1 s)
    expect(stopped.locator(".seen")).to_have_text(re.compile(r"^OFFLINE · last chunk 1[01] s ago$"))
    _count(page, "offline", 1)
    page.locator("#grid-controls").get_by_label("Show").select_option("offline")
    _audit(page)
    expect(grid.locator("> li:not([hidden])")).to_have_count(1)
    assert _tiles(page) == {stack.ids[STOPPED]}
    resumed = start + timedelta(seconds=tolerance + 2)
    stack.arrive([stack.chunk(STOPPED, 1, resumed)])
    page.evaluate(f"window.__proctorClock.t = {_ms(resumed)}")
    expect(stopped).to_have_attribute("data-offline", "false", timeout=20_000)  # the next poll
    expect(stopped.locator(".seen")).to_have_text("last chunk 0 s ago")
    _count(page, "offline", 0)
    page.locator("#grid-controls").get_by_label("Show").select_option("all")

    # keyboard only: the next unreviewed alert (high first, oldest first), confirm, next
    page.evaluate("document.activeElement.blur()")  # keys typed in the filter stay there
    page.keyboard.press("n")
    dialog = page.locator("#alert-view")
    expect(dialog).to_be_visible()
    expect(page.locator("#alert-who")).to_contain_text("Student 009")
    expect(page.locator("#alert-heading")).to_contain_text("FACE_MISMATCH (high), open")
    page.wait_for_function(
        "() => { const i = document.querySelector('#evidence-frame');"
        " return i.complete && i.naturalWidth > 0 }"
    )
    screenshot(page, "console-decision")
    _audit(page)
    page.keyboard.press("c")
    expect(dialog.get_by_label("Confirm (misconduct)")).to_be_checked()
    page.keyboard.press("n")  # save and next
    expect(page.locator("#alert-who")).to_contain_text("Student 060", timeout=10_000)
    expect(page.locator("#review-status")).to_contain_text("Saved: confirmed misconduct.")
    expect(page).to_have_title(f"({open_alerts}) Console · {TITLE}")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    reviewed = page.locator(f'#feed [data-alert="FACE_MISMATCH-{9:016d}"]')
    expect(reviewed).to_have_attribute("data-status", "confirmed")

    # the confirmed outcome after a reload: in the feed, on the tile, in the title
    page.reload()
    expect(grid.locator("> li")).to_have_count(STUDENTS, timeout=30_000)
    expect(reviewed).to_have_attribute("data-status", "confirmed")
    expect(reviewed.locator(".status")).to_have_text("confirmed misconduct")
    tile9 = grid.locator(f'[data-student="{stack.ids[9]}"]')
    expect(tile9.locator(".review")).to_have_text("confirmed: FACE_MISMATCH · 1 dismissed")
    expect(tile9).to_have_attribute("data-review", "confirmed")
    expect(page).to_have_title(f"({open_alerts}) Console · {TITLE}")
    reviewed.get_by_role("button").click()
    expect(page.locator("#alert-heading")).to_contain_text("confirmed misconduct")
    expect(page.locator("#alert-reviews")).to_contain_text("confirm by you")  # not a UUID
    page.keyboard.press("Escape")

    # the compact view: no frames, the 200 students in a fraction of the height
    tall = page.evaluate("document.querySelector('#grid').scrollHeight")
    page.get_by_label("Compact view").check()
    expect(grid.locator("img:visible")).to_have_count(0)
    compact = page.evaluate("document.querySelector('#grid').scrollHeight")
    print(f"grid of {STUDENTS} students at 1280 px: {tall} px, compact {compact} px")
    assert compact * 3 < tall
    page.get_by_label("Compact view").uncheck()

    # a phone: no horizontal overflow, the grid with the filter and the decision dialog
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#grid-controls").get_by_label("Show").select_option("flagged")
    width = page.evaluate("document.documentElement.scrollWidth")
    print(f"page width at 390 px: {width}")
    assert width <= 390
    # the live alerts come before the grid in one column, not 200 tiles down
    feed_top = page.evaluate("document.querySelector('#feed').getBoundingClientRect().top")
    grid_top = page.evaluate("document.querySelector('#grid').getBoundingClientRect().top")
    assert feed_top < grid_top, (feed_top, grid_top)
    page.evaluate("document.querySelector('#grid-heading').scrollIntoView()")
    screenshot(page, "console-triage-phone")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("n")
    expect(dialog).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = dialog.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    screenshot(page, "console-decision-phone")

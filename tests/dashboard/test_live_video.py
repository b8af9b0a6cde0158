"""Live video in headless Chromium: the console's live tiles and the student's published camera.

There is no Chime locally, so the media connection itself is checked in a real account
(docs/deploy.md). Here:

- on the local stack the console says plainly that live video needs a Chime meeting, keeps
  the grid of latest frames, loads no SDK, and every request the page makes goes to the
  app's own origin; the API answers the join with 409 ``no_meeting``;
- with Chime switched on in the page's configuration and the API's join answer replaced
  (Playwright's ``route``) by a meeting whose media URLs point back at the app, the SDK
  bundle (built by ``make web`` from the npm lock) is served from the app's origin, the
  join info reaches the SDK's ``MeetingSessionConfiguration`` on the console and on the
  student's page, the CSP lets the SDK start, and nothing is fetched from anywhere else.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import BrowserContext, Page, Route, expect

from dashboard.server import CSP, WEB_DIR
from infrastructure.local import sign_in
from lambdas.api.live import NO_MEETING
from tests.conftest import DATA
from tests.dashboard.conftest import Screenshot, Web
from tests.dashboard.test_interventions_in_browser import _alert_about
from tests.lambdas.api.conftest import PASSWORD

BUNDLE = WEB_DIR / "js" / "vendor" / "amazon-chime-sdk.js"
MEETING_ID = "0a1b2c3d-1111-2222-3333-444455556666"

# what the page saw: every request and WebSocket, and every CSP violation
_RECORD = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation',"
    " (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));"
)


# long.js (protobufjs's 64-bit integers, in the SDK) probes WebAssembly inside a try and falls
# back to plain JavaScript: the CSP keeps wasm off on purpose, so this one report is expected
_WASM_PROBE = "script-src wasm-eval"


def _violations(page: Page) -> set[str]:
    reported: list[str] = page.evaluate("window.__csp")
    return set(reported) - {_WASM_PROBE}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


def _recorded(context: BrowserContext) -> list[str]:
    seen: list[str] = []
    context.on("request", lambda request: seen.append(request.url))
    context.on("page", lambda page: page.on("websocket", lambda ws: seen.append(ws.url)))
    context.add_init_script(_RECORD)
    return seen


def _network(seen: list[str]) -> set[str]:
    return {_origin(url) for url in seen if urlsplit(url).scheme in ("http", "https", "ws", "wss")}


def _token(web: Web, who: str) -> str:
    return sign_in(web.settings, web.emails[who], PASSWORD)["IdToken"]


def _call(web: Web, token: str, method: str, path: str, **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.request(method, web.url + path, headers=headers, timeout=60, **kw)


def _started_exam_with_a_student(web: Web) -> tuple[str, str, str]:
    """(exam id, the proctor's token, the student's token): started, the student enrolled,
    consented and registered through the API, as their page would have done."""
    proctor, student = _token(web, "proctor"), _token(web, "student")
    exam_id = _call(web, proctor, "POST", "/exams", json={"title": "Live"}).json()["exam_id"]
    assert _call(web, proctor, "POST", f"/exams/{exam_id}/start").status_code == 200
    base = f"/exams/{exam_id}/students/{web.ids['student']}"
    assert _call(web, student, "POST", f"/exams/{exam_id}/join").status_code == 200
    consent = {"policy_version": web.settings.consent_version, "accepted": True}
    assert _call(web, student, "PUT", f"{base}/consent", json=consent).status_code == 200
    photo = base64.b64encode((DATA / "faces/obama.jpg").read_bytes()).decode()
    registered = _call(web, student, "POST", f"{base}/registration", json={"photo": photo})
    assert registered.status_code == 201, registered.text
    return exam_id, proctor, student


def _console(context: BrowserContext, web: Web, exam_id: str, token: str) -> Page:
    page = context.new_page()
    page.goto(f"{web.url}/console.html?exam={exam_id}#token={token}")  # the demo's link
    expect(page.get_by_role("heading", name="Live", exact=True)).to_be_visible()
    return page


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return claims


@pytest.mark.slow
@pytest.mark.browser
def test_without_aws_the_console_says_live_video_needs_a_meeting_and_keeps_the_frames(
    web: Web, launch: Callable[..., Any]
) -> None:
    exam_id, proctor, _ = _started_exam_with_a_student(web)
    served = requests.get(f"{web.url}/console.html", timeout=30).headers
    assert served["Content-Security-Policy"] == CSP
    joined = _call(web, proctor, "POST", f"/exams/{exam_id}/meeting")
    assert joined.status_code == 409
    assert joined.json() == {"error": NO_MEETING, "reason": "no_meeting"}

    context = launch().new_context(viewport={"width": 1280, "height": 860})
    seen = _recorded(context)
    page = _console(context, web, exam_id, proctor)
    expect(page.locator("#live-status")).to_have_text(NO_MEETING)
    expect(page.locator("#grid li")).to_have_count(1)  # the latest frames' grid is there
    expect(page.locator("#grid li")).to_contain_text("Barack Student")
    assert page.evaluate("window.__csp") == []
    assert not any("/vendor/" in url for url in seen), "no SDK is loaded without a meeting"
    assert page.locator("#live").get_attribute("data-live") == "unavailable"
    assert _network(seen) == {web.url}, seen


def _fake_join(web: Web, token: str, attendee_id: str, proctor_id: str) -> dict[str, Any]:
    """A join answer shaped like the API's, whose media URLs point back at the app: whatever
    the SDK then tries (signalling, TURN, event ingestion) stays on the app's origin."""
    host = urlsplit(web.url).netloc
    return {
        "Meeting": {
            "MeetingId": MEETING_ID,
            "ExternalMeetingId": "live-test",
            "MediaRegion": "us-east-1",
            "MediaPlacement": {
                "AudioHostUrl": f"{host}:3478",
                "AudioFallbackUrl": f"ws://{host}/chime/audio",
                "SignalingUrl": f"ws://{host}/chime/signal",
                "TurnControlUrl": f"{web.url}/chime/turn",
                "EventIngestionUrl": f"{web.url}/chime/events",
            },
        },
        "Attendee": {
            "AttendeeId": attendee_id,
            "ExternalUserId": _claims(token)["sub"],
            "JoinToken": "Sm9pblRva2VuRm9yVGVzdHM",
        },
        "proctor_id": proctor_id,
    }


def _with_chime(context: BrowserContext, web: Web, join: dict[str, Any], asked: list[str]) -> None:
    """The page's config says Chime is on; the API's join answer is ``join``."""

    def config(route: Route) -> None:
        body = route.fetch().json()
        route.fulfill(json={**body, "chime": {**body["chime"], "enabled": True}})

    def meeting(route: Route) -> None:
        asked.append(route.request.method)
        route.fulfill(json=join)

    context.route(f"{web.url}/config.json", config)
    context.route(f"{web.url}/exams/*/meeting", meeting)


_CONFIGURATION = """() => {
  const c = globalThis.chimeLive.configuration;
  return { meetingId: c.meetingId, attendeeId: c.credentials.attendeeId,
           externalUserId: c.credentials.externalUserId, joinToken: c.credentials.joinToken,
           signalingURL: c.urls.signalingURL, turnControlURL: c.urls.turnControlURL,
           audioHostURL: c.urls.audioHostURL, eventIngestionURL: c.urls.eventIngestionURL };
}"""


def _expect_configuration(page: Page, join: dict[str, Any]) -> None:
    page.wait_for_function("() => globalThis.chimeLive?.configuration", timeout=30_000)
    placement = join["Meeting"]["MediaPlacement"]
    assert page.evaluate(_CONFIGURATION) == {
        "meetingId": MEETING_ID,
        "attendeeId": join["Attendee"]["AttendeeId"],
        "externalUserId": join["Attendee"]["ExternalUserId"],
        "joinToken": join["Attendee"]["JoinToken"],
        "signalingURL": placement["SignalingUrl"],
        "turnControlURL": placement["TurnControlUrl"],
        "audioHostURL": placement["AudioHostUrl"],
        "eventIngestionURL": placement["EventIngestionUrl"],
    }


# Two remote video tiles as the SDK makes them when students' video arrives (the fake camera
# stands in for the media), the console's sent data messages recorded. The session is stopped
# first: the fake meeting has no media server, and the SDK's reconnect clears every tile.
_TILES = """async (students) => {
  const av = globalThis.chimeLive.session.audioVideo;
  globalThis.__sent = [];
  av.realtimeSendDataMessage = (topic, data) => globalThis.__sent.push({ topic, data });
  const camera = await navigator.mediaDevices.getUserMedia({ video: true });
  students.forEach((id, i) =>
    av.addVideoTile().bindVideoStream(`att-${i}`, false, camera, 640, 480, i + 1, id));
}"""


def _tiles_first_alert_enlarge_listen(
    web: Web, console: Page, exam_id: str, screenshot: Screenshot
) -> None:
    """Eve has an open alert: her tile comes first though her video came second; a click
    enlarges a tile; Listen asks that student alone (a data message) and unmutes the mix."""
    student, eve = web.ids["student"], web.ids["eve"]
    eve_token = _token(web, "eve")
    assert _call(web, eve_token, "POST", f"/exams/{exam_id}/join").status_code == 200
    _alert_about(web, exam_id, eve)
    expect(console.locator("#grid li").first).to_have_attribute("data-student", eve)
    console.evaluate("globalThis.chimeLive.session.audioVideo.stop()")
    expect(console.locator("#live-status")).to_contain_text("Live video stopped")
    console.evaluate(_TILES, [student, eve])
    tiles = console.locator("#live .tile")
    expect(tiles).to_have_count(2)
    expect(tiles.first).to_have_attribute("data-student", eve)
    expect(tiles.nth(1)).to_contain_text("Barack Student")
    expect(tiles.nth(1).locator("video")).to_have_js_property("readyState", 4, timeout=15_000)
    tiles.nth(1).get_by_role("button", name="Enlarge Barack Student").click()
    expect(tiles.nth(1)).to_have_class("tile enlarged")
    tiles.first.locator(".enlarge").click()  # one enlarged at a time
    expect(tiles.first).to_have_class("tile enlarged")
    expect(tiles.nth(1)).to_have_class("tile")
    tiles.nth(1).get_by_role("button", name="Listen").click()
    expect(console.locator("#live-status")).to_have_text("Listening to Barack Student.")
    assert console.evaluate("globalThis.__sent") == [
        {"topic": "listen", "data": {"student_id": student}}
    ]
    assert console.evaluate("document.querySelector('#live audio').muted") is False
    tiles.first.locator(".enlarge").click()
    screenshot(console, "console-live")


# a data message arriving on the student's page, as the SDK hands it to subscribers
_LISTEN = """([sender, named]) => {
  const av = globalThis.chimeLive.session.audioVideo;
  av.realtimeController.realtimeReceiveDataMessage({ topic: "listen", timestampMs: Date.now(),
    senderExternalUserId: sender, json: () => ({ student_id: named }) });
  return av.realtimeIsLocalAudioMuted();
}"""


def _microphone_on_the_proctors_request_only(page: Page, proctor: str, ids: dict[str, str]) -> None:
    """The student's microphone is muted in the meeting until the exam's proctor listens to
    them; a request from anyone else, or for another student, leaves or makes it muted."""
    muted = "globalThis.chimeLive.session.audioVideo.realtimeIsLocalAudioMuted()"
    assert page.evaluate(muted) is True
    assert page.evaluate(_LISTEN, [ids["eve"], ids["student"]]) is True  # a student asks: no
    assert page.evaluate(_LISTEN, [proctor, ids["student"]]) is False  # the proctor: on
    assert page.evaluate(_LISTEN, [proctor, ids["eve"]]) is True  # listens to another: off


@pytest.mark.slow
@pytest.mark.browser
def test_the_join_info_reaches_the_sdk_configuration_from_a_bundle_on_the_apps_origin(
    web: Web,
    launch: Callable[..., Any],
    camera_file: Callable[[str], Path],
    screenshot: Screenshot,
) -> None:
    if not BUNDLE.is_file():
        pytest.fail(f"{BUNDLE} is not built: run `make web` (make test does)")
    exam_id, proctor, student = _started_exam_with_a_student(web)
    browser = launch(camera=camera_file("center_focus.mp4"))

    console_context = browser.new_context(viewport={"width": 1280, "height": 860})
    seen = _recorded(console_context)
    asked: list[str] = []
    proctor_join = _fake_join(web, proctor, "aaaaaaaa-1111-2222-3333-444444444444", "")
    _with_chime(console_context, web, proctor_join, asked)
    console = _console(console_context, web, exam_id, proctor)
    _expect_configuration(console, proctor_join)
    assert asked == ["POST"]
    assert f"{web.url}/js/vendor/amazon-chime-sdk.js" in seen  # the bundle, from the app
    expect(console.locator("#live-status")).not_to_have_text(NO_MEETING)
    _tiles_first_alert_enlarge_listen(web, console, exam_id, screenshot)
    assert _violations(console) == set()  # the SDK started under the CSP
    assert _network(seen) == {web.url}, sorted(set(seen))

    # the student's page publishes their camera with their own attendee
    student_context = browser.new_context(viewport={"width": 1100, "height": 800})
    seen = _recorded(student_context)
    session = {"token": student, "claims": _claims(student), "refresh": None}  # signed in
    student_context.add_init_script(
        f"sessionStorage.setItem('proctoring.session', {json.dumps(json.dumps(session))});"
    )
    student_join = _fake_join(
        web, student, "bbbbbbbb-1111-2222-3333-444444444444", _claims(proctor)["sub"]
    )
    _with_chime(student_context, web, student_join, asked)
    page = student_context.new_page()
    page.goto(f"{web.url}/student.html?exam={exam_id}")
    page.get_by_role("button", name="Continue").click()  # the system check (camera)
    expect(page.get_by_role("heading", name="Exam in progress")).to_be_visible(timeout=60_000)
    _expect_configuration(page, student_join)
    # camera and microphone handed to the SDK, the session started: no error on the way
    expect(page.locator("#live-status")).to_have_text("Connecting your camera to your proctor…")
    _microphone_on_the_proctors_request_only(page, _claims(proctor)["sub"], web.ids)
    assert _violations(page) == set()
    # the app, and the emulator that stands in for S3 (the chunks' presigned POSTs)
    assert _network(seen) <= {web.url, _origin(str(web.settings.endpoint_url))}, sorted(set(seen))
    assert f"{web.url}/js/vendor/amazon-chime-sdk.js" in seen


def test_the_pages_csp_lets_the_chime_sdk_reach_its_meeting_and_nothing_more() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CSP.split(";"))
    assert directives["script-src"] == "'self'"  # the SDK bundle is the app's own file
    assert directives["connect-src"] == "'self' http: https: wss://*.chime.aws"
    assert directives["worker-src"] == "blob:"  # the SDK's encoded-transform worker

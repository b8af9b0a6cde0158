// Live video through the exam's Chime SDK meeting (AWS): the proctor console's live tiles and
// the student's camera published to the meeting.
//
// The SDK is amazon-chime-sdk-js from npm, bundled by esbuild into js/vendor/amazon-chime-sdk.js
// (`make web`, from package-lock.json) and served with the pages: no CDN. Both sides join with
// what POST /exams/{exam}/meeting answers (lambdas/api/live.py): the meeting and the caller's
// own attendee, exactly the JSON MeetingSessionConfiguration takes. The SDK is imported only
// once that answer came: the local stack has no meeting (409 no_meeting), so the console shows
// the API's plain words for it and keeps the grid of latest analysed frames; the student's page
// does not even ask there (config.chime.enabled).
//
// Audio on demand: the meeting's audio is one mix, so a student's microphone stays muted in the
// meeting until the proctor's attendee asks for that student (a data message on LISTEN_TOPIC);
// every other student's page mutes itself. Students hear nothing and see no tile.

import { ApiError, api, el, fail, show } from "./app.js";

const SDK = "./vendor/amazon-chime-sdk.js";
const LISTEN_TOPIC = "listen";
const enc = encodeURIComponent;

/** Join the exam's meeting: fetch the join info, build the SDK's configuration and session. */
async function join(examId) {
  const info = await api(`/exams/${enc(examId)}/meeting`, { method: "POST" });
  const sdk = await import(SDK);
  const logger = new sdk.ConsoleLogger("live", sdk.LogLevel.WARN);
  const configuration = new sdk.MeetingSessionConfiguration(info.Meeting, info.Attendee);
  const session = new sdk.DefaultMeetingSession(configuration, logger, new sdk.DefaultDeviceController(logger));
  // What the page joined with, for a look in the developer tools and for the browser tests
  // (tests/dashboard/test_live_video.py): the media connection itself needs AWS.
  globalThis.chimeLive = { configuration, session };
  return { info, session, av: session.audioVideo };
}

// ---- the proctor console ----------------------------------------------------------------------

/**
 * The console's live section: `sync(exam)` joins a started exam's meeting (once), `order(students)`
 * puts the students with open alerts first, `stop()` leaves.
 * @param {HTMLElement} section holds `.tiles` (a list) and `[role=status]`
 */
export function mountLive(section) {
  const tiles = section.querySelector(".tiles");
  const status = section.querySelector("[role=status]");
  const audio = el("audio", { autoplay: true, hidden: true });
  section.append(audio);
  let live = null;
  let examId = null;
  let rank = new Map(); // student id -> place in the grid
  let names = new Map();

  function stop() {
    live?.av.stop();
    live = null;
    examId = null;
    show(tiles);
  }

  function place() {
    const items = [...tiles.children];
    items.sort((a, b) => (rank.get(a.dataset.student) ?? 1e9) - (rank.get(b.dataset.student) ?? 1e9));
    for (const item of items) tiles.append(item);
  }

  function tile(tileState) {
    const student = tileState.boundExternalUserId;
    let item = tiles.querySelector(`[data-tile="${tileState.tileId}"]`);
    if (!item) {
      const video = el("video", { autoplay: true, muted: true, playsInline: true });
      const name = names.get(student) || student;
      item = el("li", { class: "tile", dataset: { tile: String(tileState.tileId), student } },
        el("button", { type: "button", class: "enlarge", "aria-pressed": "false", "aria-label": `Enlarge ${name}`, onclick: () => enlarge(item) }, video),
        el("span", { class: "who" }, name), " ",
        el("button", { type: "button", class: "listen", "aria-pressed": "false", onclick: () => listen(item) }, "Listen"));
      tiles.append(item);
      live.av.bindVideoElement(tileState.tileId, video);
      place();
    }
  }

  function enlarge(item) {
    const on = !item.classList.contains("enlarged");
    for (const other of tiles.querySelectorAll(".enlarged")) {
      other.classList.remove("enlarged");
      other.querySelector(".enlarge").setAttribute("aria-pressed", "false");
    }
    item.classList.toggle("enlarged", on);
    item.querySelector(".enlarge").setAttribute("aria-pressed", String(on));
  }

  function listen(item) {
    const on = item.querySelector(".listen").getAttribute("aria-pressed") !== "true";
    for (const button of tiles.querySelectorAll(".listen")) button.setAttribute("aria-pressed", "false");
    item.querySelector(".listen").setAttribute("aria-pressed", String(on));
    live.av.realtimeSendDataMessage(LISTEN_TOPIC, { student_id: on ? item.dataset.student : null });
    audio.muted = !on;
    show(status, on ? `Listening to ${names.get(item.dataset.student) || item.dataset.student}.` : "Live.");
  }

  async function sync(exam) {
    if (exam.status !== "started") {
      stop();
      show(status, exam.status === "stopped" ? "The exam is over: no live video." : "Live video starts with the exam.");
      return;
    }
    if (examId === exam.exam_id) return;
    examId = exam.exam_id;
    show(status, "Joining the exam's meeting…");
    let joined;
    try {
      joined = await join(exam.exam_id);
    } catch (error) {
      if (error instanceof ApiError && error.reason === "no_meeting") {
        section.dataset.live = "unavailable"; // the local stack: the grid is what there is
        show(status, error.message);
      } else {
        examId = null;
        fail(status, error);
      }
      return;
    }
    if (examId !== exam.exam_id) return; // left (another exam, or stopped) while joining
    live = joined;
    section.dataset.live = "joining";
    live.av.addObserver({
      videoTileDidUpdate(tileState) {
        if (!tileState.localTile && !tileState.isContent && tileState.boundExternalUserId) tile(tileState);
      },
      videoTileWasRemoved(tileId) {
        tiles.querySelector(`[data-tile="${tileId}"]`)?.remove();
      },
      audioVideoDidStart() {
        section.dataset.live = "on";
        show(status, "Live.");
      },
      audioVideoDidStop(sessionStatus) {
        section.dataset.live = "off";
        show(status, `Live video stopped (${sessionStatus.statusCode()}); the grid keeps the latest frames.`);
      },
    });
    audio.muted = true; // the meeting's mix: only the student the proctor listens to is unmuted
    live.av.bindAudioElement(audio).catch((error) => console.warn("live audio not bound:", error));
    live.av.start();
  }

  function order(students) {
    names = new Map(students.map((s) => [s.student_id, s.name || s.student_id]));
    const sorted = [...students].sort((a, b) => (b.open_alerts > 0) - (a.open_alerts > 0));
    rank = new Map(sorted.map((s, i) => [s.student_id, i]));
    place();
  }

  return { sync, order, stop };
}

// ---- the student's page ------------------------------------------------------------------------

/**
 * Publish the student's camera (the stream they record) to the exam's meeting, with their
 * microphone muted until the proctor listens. Null where there is no meeting (local stack).
 */
export async function publishCamera(config, examId, camera, status) {
  if (!config.chime?.enabled) return null; // the uploaded chunks are all the proctor sees
  const live = await join(examId);
  const { av, info } = live;
  const self = info.Attendee.ExternalUserId;
  try {
    const microphone = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    await av.startAudioInput(microphone);
  } catch (error) {
    fail(status, new Error(`No microphone: your proctor cannot listen (${error.message}).`));
  }
  av.realtimeMuteLocalAudio();
  av.realtimeSubscribeToReceiveDataMessage(LISTEN_TOPIC, (message) => {
    if (message.senderExternalUserId !== info.proctor_id) return; // only the proctor asks
    if (message.json().student_id === self) av.realtimeUnmuteLocalAudio();
    else av.realtimeMuteLocalAudio();
  });
  await av.startVideoInput(new MediaStream(camera.getVideoTracks()));
  av.addObserver({
    audioVideoDidStart() {
      av.realtimeMuteLocalAudio();
      av.startLocalVideoTile();
      show(status, "Your camera is live to your proctor.");
    },
  });
  av.start();
  show(status, "Connecting your camera to your proctor…");
  return {
    stop() {
      av.stopLocalVideoTile();
      av.stop();
    },
  };
}

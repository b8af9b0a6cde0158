// The student's exam page: sign in, consent, system check (system-check.js), registration
// photo, the exam.
//
// The exam id comes from the link (?exam=...). Recording starts when the proctor starts the
// exam; chunks go through the IndexedDB outbox (outbox.js), so a network cut loses nothing.
// The proctor's interventions (pause, resume, warnings, end) and the raised hand:
// student-session.js. What the browser knows beside the camera (tab hidden, paste, full screen
// left, camera stopped): integrity.js. The exam view lists, in plain words, what each rule
// the policy enables for this student asks of them (instructions.js; the join answers the
// rules); every message and notice from the proctor stays in a history, the newest on top;
// when the proctor stops the exam the heading says it has ended. The microphone is recorded
// into the camera's chunks only when the exam's policy asks for it (exam.audio); the consent
// text then names it.

import { $, ApiError, api, currentSession, el, fail, loadConfig, show, signInForm, step, when } from "./app.js";
import { IntegrityReporter, fullscreenButton } from "./integrity.js";
import { Outbox, Uploader } from "./outbox.js";
import { ChunkRecorder } from "./recorder.js";
import { systemCheck } from "./system-check.js";
import { followSession } from "./student-session.js";
import { publishCamera } from "./chime-live.js";
import { instruction } from "./instructions.js";

const examId = new URLSearchParams(location.search).get("exam");
const ENROLMENT_FRAMES = 3; // more views of the camera kept beside the photo (API: at most 8)
const ENROLMENT_SPACING_MS = 400;
const state = { camera: null, screen: null, exam: null, student: null, base: "", seen: new Set(), rules: [] };

async function main() {
  const config = await loadConfig();
  if (!examId) {
    step("signin");
    show($("#signin-status"), "This link names no exam (?exam=...). Ask your proctor for the exam link.");
    return;
  }
  let session = currentSession();
  if (!session) {
    step("signin");
    session = await signInForm($("#signin-form"), $("#signin-status"), "student");
  }
  state.student = session.claims.sub;
  state.base = `/exams/${encodeURIComponent(examId)}/students/${encodeURIComponent(state.student)}`;
  let enrolment;
  try {
    enrolment = await api(`/exams/${encodeURIComponent(examId)}/join`, { method: "POST" });
    state.exam = await api(`/exams/${encodeURIComponent(examId)}`);
  } catch (error) {
    step("signin");
    fail($("#signin-status"), error);
    return;
  }
  state.rules = enrolment.rules || [];
  show($("#exam-title"), state.exam.title);
  document.title = `${state.exam.title} - proctored exam`;
  if (enrolment.consent?.version !== enrolment.consent_version) {
    await consent(enrolment.consent_version, enrolment.privacy);
  }
  ({ camera: state.camera, screen: state.screen } = await systemCheck(state.exam, state.base));
  if (!enrolment.registered_at) await register();
  await exam(config);
}

function consent(version, privacy) {
  step("consent");
  show($("#policy-version"), version);
  $("#consent-microphone").hidden = !state.exam.audio;
  if (privacy) {
    const days = privacy.retention_days;
    show($("#consent-retention"), `Recordings, frames and results are kept for ${days} day${days === 1 ? "" : "s"} `
      + "and then deleted automatically; you can ask for them to be erased earlier.");
    for (const node of document.querySelectorAll(".privacy-contact")) show(node, privacy.contact);
  }
  const form = $("#consent-form");
  return new Promise((resolve) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api(`${state.base}/consent`, {
          method: "PUT",
          json: { policy_version: version, accepted: true },
        });
        resolve();
      } catch (error) {
        fail($("#consent-status"), error);
      }
    });
  });
}

function register() {
  step("register");
  const video = $("#register-video");
  video.srcObject = state.camera;
  const status = $("#register-status");
  const take = $("#take-photo");
  take.disabled = video.readyState < 2; // no frame to take yet
  video.addEventListener("loadeddata", () => { take.disabled = false; }, { once: true });
  return new Promise((resolve) => {
    async function send(blob, frameBlobs = []) {
      show(status, "Checking your photo…");
      const photo = await base64(blob);
      const frames = await Promise.all(frameBlobs.map(base64));
      let answer;
      try {
        answer = await api(`${state.base}/registration`, { method: "POST", json: { photo, frames } });
      } catch (error) {
        fail(status, error instanceof ApiError && error.status === 422
          ? new Error(`${error.message} Try again.`)
          : error);
        return;
      }
      const enrolled = answer?.frames_enrolled ?? 0;
      video.dataset.framesEnrolled = String(enrolled);
      show(status, `Registered${enrolled ? ` with ${enrolled} more views from your camera` : ""}.`);
      resolve();
    }
    // The photo and a few more views of the same camera, a moment apart: each chunk is
    // compared with the closest, so a turn of the head or other light is not "someone else".
    // A photo chosen from a file is sent alone: views of the camera would not vouch for it.
    take.addEventListener("click", async () => {
      take.disabled = true;
      show(status, "Hold still for a moment…");
      const photo = await snapshot(video);
      const frames = [];
      for (let i = 0; i < ENROLMENT_FRAMES; i += 1) {
        await new Promise((done) => setTimeout(done, ENROLMENT_SPACING_MS));
        frames.push(await snapshot(video));
      }
      take.disabled = false;
      send(photo, frames);
    });
    $("#photo-file").addEventListener("change", (event) => {
      const file = event.target.files[0];
      if (file) send(file);
    });
  });
}

function snapshot(video) {
  const canvas = el("canvas", { width: video.videoWidth || 640, height: video.videoHeight || 480 });
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
}

async function base64(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

async function waitForStart() {
  while (state.exam.status === "created") {
    step("waiting");
    await new Promise((resolve) => setTimeout(resolve, 3000));
    state.exam = await api(`/exams/${encodeURIComponent(examId)}`).catch(() => state.exam);
  }
}

async function exam(config) {
  await waitForStart();
  if (state.exam.status === "stopped") {
    step("done");
    show($("#done-status"), "This exam has ended.");
    return;
  }
  const session = await api(`${state.base}/session`).catch(() => null); // offline: record
  if (session?.state === "ended") { // a reload after the proctor ended it: nothing to record
    ended(session);
    return;
  }
  step("exam");
  show($("#rule-list"), state.rules.map((rule) => el("li", { dataset: { rule } }, instruction(rule))));
  $("#exam-video").srcObject = state.camera;
  const outbox = await Outbox.open(`proctoring-outbox-${examId}-${state.student}`);
  const sources = { camera: state.camera };
  if (state.screen) sources.screen = state.screen;
  const uploaders = {};
  const recorders = [];
  const render = () => renderUploads(uploaders, recorders, outbox);
  for (const [source, stream] of Object.entries(sources)) {
    const uploader = new Uploader(outbox, { exam: examId, student: state.student, source, onChange: render });
    uploaders[source] = uploader;
    const counter = `proctoring-next-${examId}-${state.student}-${source}`;
    const recorder = new ChunkRecorder(stream, {
      seconds: config.chunk_seconds,
      firstSequence: Number(localStorage.getItem(counter) || 0),
      onChunk: async (blob, sequence) => {
        await outbox.put(source, sequence, blob);
        localStorage.setItem(counter, String(sequence + 1));
        uploader.wake();
        render();
      },
    });
    recorders.push(recorder);
    recorder.start();
    uploader.run();
  }
  $("#recording").hidden = false;
  render();
  const integrity = new IntegrityReporter({
    exam: examId, student: state.student, area: $("#exam-content"), camera: state.camera, onChange: renderIntegrity,
  });
  integrity.start();
  fullscreenButton($("#fullscreen"));
  const refreshChat = chat();
  watchExam(recorders);
  // live video (AWS): the camera also goes to the exam's Chime meeting (chime-live.js)
  state.live = publishCamera(config, examId, state.camera, $("#live-status")).catch((error) => fail($("#live-status"), error));
  followSession({
    config,
    base: state.base,
    onChat: refreshChat,
    onEnded: (over) => {
      for (const recorder of recorders) recorder.stop();
      integrity.stop();
      ended(over);
    },
  }).apply(session ?? { state: "running", warnings: [], hand_raised: false });
}

function ended(session) {
  state.live?.then((published) => published?.stop()); // leave the meeting too
  $("#recording").hidden = true;
  step("done");
  show($("#done-status"), `Your proctor ended your session${session.reason ? `: ${session.reason}` : ""}. `
    + "Recording has stopped; nothing more is uploaded.");
}

async function renderUploads(uploaders, recorders, outbox) {
  const waiting = await outbox.count();
  const all = Object.values(uploaders);
  const uploaded = all.reduce((sum, u) => sum + u.uploaded, 0);
  const offline = all.some((u) => u.offline);
  const speed = all.map((u) => u.bitsPerSecond).find((b) => b);
  const parts = [`${uploaded} chunk${uploaded === 1 ? "" : "s"} uploaded`];
  if (waiting) parts.push(`${waiting} waiting on this computer`);
  if (offline) parts.push("offline: recording continues and is kept until the connection is back");
  else if (speed) parts.push(`upload ${(speed / 1e6).toFixed(1)} Mbit/s`);
  const status = $("#upload-status");
  status.dataset.uploaded = String(uploaded);
  status.dataset.waiting = String(waiting);
  status.classList.toggle("offline", offline);
  show(status, parts.join(" · "));
}

function renderIntegrity(reporter) {
  const status = $("#integrity-status");
  const waiting = reporter.waiting;
  status.dataset.sent = String(reporter.sent);
  status.dataset.waiting = String(waiting);
  show(status, waiting ? `${waiting} page event${waiting === 1 ? "" : "s"} waiting to be sent` : "");
}

function chat() {
  const log = $("#chat-log");
  const form = $("#chat-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api(`${state.base}/messages`, { method: "POST", json: { text: form.text.value } });
      form.reset();
      await refresh();
    } catch (error) {
      fail($("#chat-status"), error);
    }
  });
  async function refresh() {
    let messages;
    try {
      ({ messages } = await api(`${state.base}/messages`));
    } catch {
      return; // offline: the next look catches up
    }
    for (const message of messages) {
      if (state.seen.has(message.message_id)) continue;
      state.seen.add(message.message_id);
      const mine = message.sender_id === state.student;
      if (message.kind === "alert") {
        const rule = message.alert?.type;
        warn(`Proctoring notice: ${rule ? instruction(rule) : "the proctoring flagged something."} Your proctor has been informed.`);
        continue;
      }
      if (message.kind !== "chat") continue; // an intervention: student-session.js shows it
      log.append(el("li", { class: mine ? "mine" : "theirs" },
        el("span", { class: "who" }, mine ? "You" : "Proctor"), " ",
        el("time", {}, when(message.created_at)), " ",
        el("span", { class: "text" }, message.text)));
      if (!mine) warn(`Message from your proctor: ${message.text}`);
    }
  }
  refresh();
  setInterval(refresh, 3000);
  return refresh;
}

/** The newest message or notice on top of the page; every one kept in the history. */
function warn(text) {
  const box = $("#warning");
  show(box, text);
  box.hidden = false;
  $("#notice-history").prepend(el("li", {}, el("time", {}, when(new Date().toISOString())), " ", el("span", { class: "text" }, text)));
}

function watchExam(recorders) {
  const timer = setInterval(async () => {
    const exam = await api(`/exams/${encodeURIComponent(examId)}`).catch(() => null);
    if (exam?.status !== "stopped") return;
    clearInterval(timer);
    for (const recorder of recorders) recorder.stop();
    $("#recording").hidden = true;
    show($("#exam-heading"), "The exam has ended");
    document.title = `Ended: ${state.exam.title} - proctored exam`;
    $("#exam-content").hidden = true;
    $("#raise-hand").closest("p").hidden = true;
    warn("The exam has ended: your proctor stopped it. Recording has stopped. Chunks still waiting are uploaded; keep this page open until none is left.");
  }, 5000);
}

main().catch((error) => fail($("#signin-status"), error));

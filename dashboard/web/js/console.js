// The proctor console: sign in, exams, the live grid, the alert feed, alert review, chat,
// interventions (interventions.js), the per-student timeline and the report export.
//
// Live alerts come from the local server's SSE stream (config.live_alerts == "sse"); without
// it (AWS, where the Chime channel carries them) the alerts list is polled. An alert event
// costs no request: the feed, the tile (grid.js), the counts and the tab title are drawn from
// the alerts the console holds.
//
// Keys (outside text fields): N opens the next unreviewed alert (highest severity, oldest
// first), / goes to the search; in an alert: C confirm, D dismiss, A acknowledge, S save,
// N save and open the next one.

import { $, api, currentSession, el, fail, freshSession, groupsOf, loadConfig, show, signInForm, signOut, step, useToken, when } from "./app.js";
import { mountPanel, refreshPanels, renderTimeline, timelineEntry, unmountPanel } from "./interventions.js";
import { mountLive } from "./chime-live.js";
import { SEVERITY, mountGrid } from "./grid.js";
import { announce, mountAnnounce } from "./announce.js";
import { renderStrip } from "./strip.js";

const GRID_SECONDS = 3;
const state = { config: null, exam: null, students: new Map(), alerts: new Map(), stream: null, timers: [], open: null, grid: null, polling: false };
const enc = encodeURIComponent;
let live = null; // the live video tiles (chime-live.js)

async function main() {
  state.config = await loadConfig();
  live = mountLive($("#live"));
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) {
    useToken(fragment.get("token")); // the demo's link; kept out of the server's logs (fragment)
    history.replaceState(null, "", location.pathname + location.search);
  }
  let session = currentSession();
  if (!session) {
    step("signin");
    session = await signInForm($("#signin-form"), $("#signin-status"), "proctor");
  }
  show($("#who"), `Signed in as ${session.claims.email || session.claims.sub} (${groupsOf(session).join(", ")})`);
  const out = $("#sign-out");
  out.hidden = false;
  out.addEventListener("click", () => {
    signOut();
    location.reload();
  });
  wireExamView();
  wireDialogs();
  wireKeys();
  state.grid = mountGrid({
    list: $("#grid"),
    empty: $("#grid-empty"),
    counts: $("#grid-counts"),
    controls: $("#grid-controls"),
    onOpen: openStudent,
    alertsOf: (studentId) => [...state.alerts.values()].filter((a) => a.student_id === studentId),
  });
  mountAnnounce($("#announce"));
  const exam = new URLSearchParams(location.search).get("exam") || fragment.get("exam");
  if (exam) await openExam(exam);
  else await listExams();
}

// ---- exams ----------------------------------------------------------------------------------

async function listExams() {
  stopLive();
  state.exam = null;
  document.title = "Proctor console";
  step("exams");
  const rows = $("#exam-rows");
  try {
    const { exams } = await api("/exams");
    show(rows, exams.map((exam) => el("tr", {},
      el("td", {}, el("a", { href: `?exam=${enc(exam.exam_id)}`, onclick: (e) => { e.preventDefault(); openExam(exam.exam_id); } }, exam.title)),
      el("td", {}, exam.status),
      el("td", {}, when(exam.created_at)),
      el("td", {}, startStopButton(exam, listExams)))));
  } catch (error) {
    fail($("#exams-status"), error);
  }
}

function startStopButton(exam, after) {
  if (exam.status === "stopped") return "";
  const action = exam.status === "started" ? "stop" : "start";
  return el("button", {
    type: "button",
    "aria-label": `${action === "start" ? "Start" : "Stop"} ${exam.title}`,
    onclick: async () => {
      if (action === "stop" && !confirm(`Stop "${exam.title}"? Chunks after this are not analysed.`)) return;
      try {
        await api(`/exams/${enc(exam.exam_id)}/${action}`, { method: "POST" });
        await after();
      } catch (error) {
        fail($("#exams-status"), error);
      }
    },
  }, action === "start" ? "Start" : "Stop");
}

$("#create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  try {
    await api("/exams", { method: "POST", json: { title: form.title.value, screen: form.screen.checked } });
    form.reset();
    await listExams();
  } catch (error) {
    fail($("#exams-status"), error);
  }
});

// ---- one exam -------------------------------------------------------------------------------

function wireExamView() {
  $("#back").addEventListener("click", () => {
    history.pushState(null, "", location.pathname);
    listExams();
  });
  $("#start-stop").addEventListener("click", async () => {
    const action = state.exam.status === "started" ? "stop" : "start";
    if (action === "stop" && !confirm("Stop the exam? Chunks after this are not analysed.")) return;
    try {
      state.exam = await api(`/exams/${enc(state.exam.exam_id)}/${action}`, { method: "POST" });
      renderExamHeader();
    } catch (error) {
      fail($("#exam-error"), error);
    }
  });
  $("#export-json").addEventListener("click", () => exportReport("report", "json"));
  $("#export-csv").addEventListener("click", () => exportReport("report.csv", "csv"));
}

async function openExam(examId) {
  stopLive();
  try {
    state.exam = await api(`/exams/${enc(examId)}`);
  } catch (error) {
    step("exams");
    fail($("#exams-status"), error);
    return;
  }
  if (new URLSearchParams(location.search).get("exam") !== examId) {
    history.pushState(null, "", `?exam=${enc(examId)}`);
  }
  state.students.clear();
  state.alerts.clear();
  show($("#feed"));
  step("exam");
  renderExamHeader();
  await refreshGrid(); // the names first: the feed shows them
  const { alerts } = await api(`/exams/${enc(examId)}/alerts`);
  for (const alert of alerts) addAlert(alert);
  alertsChanged();
  state.timers.push(setInterval(refreshGrid, GRID_SECONDS * 1000));
  state.timers.push(setInterval(() => state.grid.render(), 1000)); // last seen, OFFLINE: no request
  if (state.config.live_alerts === "sse") follow(examId);
  else state.timers.push(setInterval(pollAlerts, 5000), setInterval(() => refreshPanels(), GRID_SECONDS * 1000));
}

function renderExamHeader() {
  const exam = state.exam;
  show($("#exam-heading"), exam.title);
  const badge = $("#exam-status");
  show(badge, exam.status);
  badge.dataset.status = exam.status;
  const button = $("#start-stop");
  button.hidden = exam.status === "stopped";
  show(button, exam.status === "started" ? "Stop exam" : "Start exam");
  const link = new URL(`student.html?exam=${enc(exam.exam_id)}`, location.href).href;
  const anchor = $("#student-link");
  anchor.href = link;
  show(anchor, link);
  live.sync(exam); // live video: joins a started exam's meeting once, leaves a stopped one
}

function stopLive() {
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
  state.stream?.close();
  state.stream = null;
  live?.stop();
}

async function exportReport(path, kind) {
  try {
    const response = await api(`/exams/${enc(state.exam.exam_id)}/${path}`, { raw: true });
    const blob = await response.blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: `${state.exam.exam_id}-report.${kind}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  } catch (error) {
    fail($("#exam-error"), error);
  }
}

// ---- the live grid ----------------------------------------------------------------------------

async function refreshGrid() {
  if (!state.exam || state.polling) return; // a slow answer is not asked for twice
  const examId = state.exam.exam_id;
  let roster;
  state.polling = true;
  try {
    roster = await api(`/exams/${enc(examId)}/students`);
    show($("#exam-error"), "");
  } catch (error) {
    fail($("#exam-error"), error);
    return;
  } finally {
    state.polling = false;
  }
  if (state.exam?.exam_id !== examId) return; // the proctor left the exam meanwhile
  for (const student of roster.students) state.students.set(student.student_id, student);
  live.order(roster.students); // live tiles: the students with an open alert first
  state.grid.update(roster);
}

/** The tab title counts the unreviewed (open) alerts: "(3) Console · Algebra". */
function alertsChanged() {
  state.grid.render();
  if (!state.exam) return;
  const open = [...state.alerts.values()].filter((a) => (a.status || "open") === "open").length;
  document.title = `${open ? `(${open}) ` : ""}Console · ${state.exam.title}`;
}

// ---- alerts -----------------------------------------------------------------------------------

function follow(examId) {
  state.stream?.close();
  const token = currentSession()?.token;
  const url = `${state.config.api_url}/exams/${enc(examId)}/alerts/stream?access_token=${enc(token)}`;
  const stream = new EventSource(url);
  state.stream = stream;
  stream.addEventListener("open", () => show($("#feed-state"), "Live"));
  stream.addEventListener("error", async () => {
    show($("#feed-state"), "Reconnecting…");
    if (stream.readyState !== EventSource.CLOSED || state.stream !== stream) return;
    // Refused (an expired token): renew the token, then follow again with it.
    await freshSession().catch(() => null);
    setTimeout(() => state.stream === stream && follow(examId), 2000);
  });
  stream.addEventListener("alert", (event) => {
    const message = JSON.parse(event.data);
    if (message.alert) addAlert(message.alert, true);
    alertsChanged();
  });
  stream.addEventListener("chat", (event) => {
    const message = JSON.parse(event.data);
    if (state.open === message.student_id) renderChat([message], false);
  });
  stream.addEventListener("control", (event) => { // an intervention, a hand, an acknowledgement
    const message = JSON.parse(event.data);
    refreshPanels(message.student_id);
    if (state.open === message.student_id) renderTimeline($("#student-interventions"), [message], nameOf);
    if (message.kind === "hand" || message.kind === "acknowledgement") {
      const notice = timelineEntry(message, nameOf); // in the feed: a live region, announced
      notice.classList.add("notice");
      notice.dataset.student = message.student_id;
      $("#feed").prepend(notice);
      refreshGrid();
    }
  });
}

async function pollAlerts() {
  const { alerts } = await api(`/exams/${enc(state.exam.exam_id)}/alerts`);
  for (const alert of alerts) addAlert(alert, true);
  alertsChanged();
}

function nameOf(studentId) {
  return state.students.get(studentId)?.name || studentId;
}

const STATUS_WORDS = { open: "open", acknowledged: "acknowledged", confirmed: "confirmed misconduct", dismissed: "dismissed (false alarm)" };

function addAlert(alert, live = false) {
  const known = state.alerts.has(alert.alert_id);
  state.alerts.set(alert.alert_id, { ...state.alerts.get(alert.alert_id), ...alert });
  if (known) {
    markReviewed(alert.alert_id);
    return;
  }
  const item = el("li", { class: `alert ${alert.severity || ""}`, dataset: { alert: alert.alert_id, type: alert.type } },
    el("button", { type: "button", onclick: () => openAlert(alert.alert_id) },
      el("strong", {}, alert.type), " ",
      el("span", {}, nameOf(alert.student_id)), " ",
      el("span", { class: "status" }), " ",
      el("span", { class: "muted" }, `${alert.severity || ""} · ${alert.type === "TALKING" ? talkingWhere(alert) : alertWhere(alert)} · ${when(alert.created_at)}`)));
  $("#feed").prepend(item);
  markReviewed(alert.alert_id);
  if (live) {
    item.classList.add("new");
    if ((alert.status || "open") === "open") announce(alert, nameOf(alert.student_id));
  }
}

/** The feed item says the alert's review state in words (and data-status for its style). */
function markReviewed(alertId) {
  const item = $(`#feed [data-alert="${CSS.escape(alertId)}"]`);
  if (!item) return;
  const status = state.alerts.get(alertId)?.status || "open";
  item.dataset.status = status;
  show(item.querySelector(".status"), STATUS_WORDS[status] || status);
}

/** The next unreviewed alert: the highest severity first, then the oldest. */
function nextUnreviewed() {
  const open = [...state.alerts.values()].filter((a) => (a.status || "open") === "open");
  open.sort((a, b) => (SEVERITY[b.severity] || 0) - (SEVERITY[a.severity] || 0)
    || String(a.created_at || "").localeCompare(String(b.created_at || "")));
  return open[0] || null;
}

async function openNext() {
  const next = nextUnreviewed();
  if (next) return openAlert(next.alert_id);
  const where = $("#alert-view").open ? $("#review-status") : $("#feed-state");
  show(where, "No unreviewed alert left.");
  return undefined;
}

function wireKeys() {
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || !state.exam) return;
    const target = event.target;
    if (target.closest?.("textarea, select, input:not([type=radio]):not([type=checkbox])")) return;
    const dialog = $("#alert-view");
    const key = event.key.toLowerCase();
    if (dialog.open) {
      const form = $("#review-form");
      const decision = { c: "confirm", d: "dismiss", a: "acknowledge" }[key];
      if (decision) {
        form.querySelector(`input[value="${decision}"]`).checked = true;
        form.querySelector(`input[value="${decision}"]`).focus();
      } else if (key === "s" || key === "n") {
        form.requestSubmit(form.querySelector(`button[value="${key === "n" ? "next" : "save"}"]`));
      } else return;
      event.preventDefault();
    } else if (!document.querySelector("dialog[open]")) {
      if (key === "n") openNext();
      else if (event.key === "/") $("#grid-controls").elements.search.focus();
      else return;
      event.preventDefault();
    }
  });
}

// ---- integrity alerts (issue 16): the browser's events have a duration, not chunks --------------
function alertWhere(alert) {
  if (alert.source !== "integrity") return `chunk ${alert.sequence ?? "?"}`;
  const duration = alert.duration_s === undefined || alert.duration_s === null ? "" : ` · ${alert.duration_s} s`;
  return `page event ${alert.sequence ?? "?"}${duration}`;
}
// ---- end of integrity alerts --------------------------------------------------------------------

// TALKING: the chunk is the audio clip (the evidence video plays it); the seconds of speech
function talkingWhere(alert) {
  return `chunk ${alert.sequence ?? "?"} · ${alert.speech_s} s of speech in ${alert.window_s} s`;
}

async function openAlert(alertId) {
  let alert = state.alerts.get(alertId);
  const dialog = $("#alert-view");
  try { // the live message carries a summary; the alerts list has every number and review
    const { alerts } = await api(`/exams/${enc(state.exam.exam_id)}/alerts?student_id=${enc(alert.student_id)}`);
    alert = { ...alert, ...alerts.find((a) => a.alert_id === alertId) };
    state.alerts.set(alertId, alert);
  } catch (error) {
    fail($("#review-status"), error);
  }
  renderHeading(alert);
  show($("#alert-who"), `${nameOf(alert.student_id)} · ${alert.source || "camera"} chunks ${alert.first_sequence ?? "?"}–${alert.sequence ?? "?"} · ${when(alert.created_at)}`);
  renderNumbers(alert);
  renderReviews(alert);
  const frame = $("#evidence-frame");
  const video = $("#evidence-video");
  const photo = $("#registered-photo");
  frame.removeAttribute("src");
  video.removeAttribute("src");
  photo.removeAttribute("src");
  photo.hidden = true; // until its link comes: no broken image while it loads or without one
  $("#evidence-boxes").replaceChildren();
  const form = $("#review-form");
  form.dataset.alert = alertId;
  form.reset(); // no decision chosen: C, D or A (or a click) chooses one
  show($("#review-status"), "");
  if (!dialog.open) dialog.showModal();
  mountPanel($("#alert-actions"), state.exam.exam_id, alert.student_id, nameOf(alert.student_id));
  try {
    const evidence = await api(`/exams/${enc(state.exam.exam_id)}/alerts/${enc(alertId)}/evidence`);
    frame.addEventListener("load", () => drawFaceBoxes(frame, alert.evidence?.face_details || []), { once: true });
    frame.src = evidence.url;
    if (evidence.chunk_url) video.src = evidence.chunk_url;
  } catch (error) {
    fail($("#review-status"), error);
  }
  try {
    const registered = await api(`/exams/${enc(state.exam.exam_id)}/students/${enc(alert.student_id)}/photo`);
    photo.src = registered.url;
    photo.hidden = false;
    show($("#registered-caption"), "The registered photo");
  } catch (error) {
    show($("#registered-caption"), error.status === 404 ? "No registered photo" : `Registered photo: ${error.message}`);
  }
}

/** A box over the evidence frame for each face the analysis found (pixels of the frame). */
function drawFaceBoxes(frame, faces) {
  const width = frame.naturalWidth;
  const height = frame.naturalHeight;
  const boxes = faces.filter((f) => Array.isArray(f.box) && f.box.length === 4).map(({ box: [left, top, w, h] }) => {
    const box = el("div", { class: "face-box" });
    // CSSOM, not a style attribute: the pages' CSP has no 'unsafe-inline' for styles
    Object.assign(box.style, {
      left: `${(100 * left) / width}%`,
      top: `${(100 * top) / height}%`,
      width: `${(100 * w) / width}%`,
      height: `${(100 * h) / height}%`,
    });
    return box;
  });
  $("#evidence-boxes").replaceChildren(...boxes);
}

function renderHeading(alert) {
  const status = alert.status || "open";
  const heading = $("#alert-heading");
  show(heading, `${alert.type} (${alert.severity || "?"}), `, el("span", { class: "status" }, STATUS_WORDS[status] || status));
  heading.dataset.status = status;
}

const NUMBERS = ["type", "severity", "first_sequence", "sequence", "chunks", "faces", "distance", "frame_time", "risk", "duration_s", "occurrences", "speech_s", "window_s"];

function renderNumbers(alert) {
  const rows = [];
  for (const key of NUMBERS) {
    if (alert[key] !== undefined && alert[key] !== null) rows.push([key, alert[key]]);
  }
  const evidence = alert.evidence || {};
  if (typeof evidence.distance === "number" && typeof evidence.threshold === "number") {
    // Identity in words: how far the face lies from the registered one, and from the line.
    const margin = evidence.distance - evidence.threshold;
    const side = margin > 0 ? "someone else's side" : "the student's side";
    rows.push(["identity distance", `${evidence.distance.toFixed(3)} against a threshold of ${evidence.threshold.toFixed(2)}: ${Math.abs(margin).toFixed(3)} on ${side}`]);
  }
  const decided = {
    frame: "the chunk's middle frame",
    fallback: "the chunk's first frame (its middle frame showed no face, an unclear face or a turned stranger)",
    repeat: `chunk ${evidence.repeat_of}'s analysis (the picture had not changed)`,
  }[evidence.analysed];
  if (decided) rows.push(["decided on", decided]);
  const pairs = (list) => list.map(([key, value]) => [el("dt", {}, key), el("dd", {}, typeof value === "number" ? String(Math.round(value * 1000) / 1000) : String(value))]);
  show($("#alert-numbers"), pairs(rows));
  // every raw number of the evidence (face boxes, poses, ...) folded away: the rows above decide
  const raw = Object.entries(flatten(evidence, "evidence"));
  $("#alert-raw").hidden = raw.length === 0;
  show($("#alert-raw summary"), `Every number of the evidence (${raw.length})`);
  show($("#alert-evidence"), pairs(raw));
}

function flatten(value, prefix) {
  const out = {};
  if (value === null || typeof value !== "object") {
    out[prefix] = value;
    return out;
  }
  for (const [key, inner] of Object.entries(value)) Object.assign(out, flatten(inner, `${prefix}.${key}`));
  return out;
}

function renderReviews(alert) {
  const reviews = alert.reviews || [];
  show($("#alert-reviews"), reviews.length
    ? reviews.map((r) => el("li", {}, el("strong", {}, r.decision), ` by ${r.by === currentSession()?.claims.sub ? "you" : r.by} at ${when(r.at)}: `, el("span", { class: "note" }, r.note || "")))
    : el("li", { class: "muted" }, "No review yet."));
}

function wireDialogs() {
  $("#review-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const alertId = form.dataset.alert;
    try {
      const updated = await api(`/exams/${enc(state.exam.exam_id)}/alerts/${enc(alertId)}/review`, {
        method: "POST",
        json: { decision: form.decision.value, note: form.note.value },
      });
      state.alerts.set(alertId, { ...state.alerts.get(alertId), ...updated });
      markReviewed(alertId);
      alertsChanged();
      if (event.submitter?.value === "next" && nextUnreviewed()) {
        await openNext();
        show($("#review-status"), `Saved: ${STATUS_WORDS[updated.status] || updated.status}. This is the next unreviewed alert.`);
        return;
      }
      renderReviews(updated);
      renderHeading(updated);
      show($("#review-status"), `Saved: ${STATUS_WORDS[updated.status] || updated.status}.${event.submitter?.value === "next" ? " No unreviewed alert left." : ""}`);
      form.reset();
    } catch (error) {
      fail($("#review-status"), error);
    }
  });
  $("#student-view").addEventListener("close", () => {
    state.open = null;
    unmountPanel($("#student-actions"));
  });
  $("#alert-view").addEventListener("close", () => unmountPanel($("#alert-actions")));
  $("#student-chat-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      const message = await api(`/exams/${enc(state.exam.exam_id)}/students/${enc(state.open)}/messages`, {
        method: "POST",
        json: { text: form.text.value },
      });
      form.reset();
      renderChat([message], false);
    } catch (error) {
      fail($("#student-chat-status"), error);
    }
  });
}

// ---- one student ------------------------------------------------------------------------------

async function openStudent(studentId) {
  state.open = studentId;
  const student = state.students.get(studentId) || { student_id: studentId, risk: 0 };
  show($("#student-heading"), student.name || studentId);
  show($("#student-summary"), `Risk ${Number(student.risk).toFixed(1)} · joined ${when(student.joined_at)} · ${student.registered_at ? "registered" : "not registered"} · id ${studentId}`);
  show($("#student-chat"));
  show($("#timeline"));
  show($("#student-strip"));
  show($("#student-alerts"));
  show($("#student-interventions"));
  const dialog = $("#student-view");
  if (!dialog.open) dialog.showModal();
  mountPanel($("#student-actions"), state.exam.exam_id, studentId, student.name || studentId);
  const base = `/exams/${enc(state.exam.exam_id)}`;
  try {
    const [{ results }, { alerts }, { messages }] = await Promise.all([
      api(`${base}/results?student_id=${enc(studentId)}`),
      api(`${base}/alerts?student_id=${enc(studentId)}`),
      api(`${base}/students/${enc(studentId)}/messages`),
    ]);
    results.sort((a, b) => (a.source + a.chunk_id).localeCompare(b.source + b.chunk_id));
    show($("#timeline"), results.map((r) => el("tr", { class: r.status, dataset: { chunk: `${r.source}#${r.sequence}` } },
      el("td", {}, `${r.source} ${r.sequence}`), el("td", {}, when(r.captured_at)), el("td", {}, r.status),
      el("td", {}, r.faces ?? ""), el("td", {}, r.identity ?? ""), el("td", {}, r.risk === undefined ? "" : Number(r.risk).toFixed(1)))));
    show($("#student-alerts"), alerts.map((a) => {
      state.alerts.set(a.alert_id, { ...state.alerts.get(a.alert_id), ...a });
      return el("li", { class: `alert ${a.severity || ""}` },
        el("button", { type: "button", onclick: () => openAlert(a.alert_id) },
          el("strong", {}, a.type), ` chunks ${a.first_sequence}–${a.sequence} · ${a.status}`));
    }));
    renderChat(messages, true);
    renderTimeline(show($("#student-interventions")), messages, nameOf);
    renderStrip($("#student-strip"), { results, alerts, messages }, {
      onAlert: (alert) => openAlert(alert.alert_id),
      onChunk: (row, byUser) => {
        for (const current of $("#timeline").querySelectorAll("tr.current")) current.classList.remove("current");
        const tr = $("#timeline").querySelector(`tr[data-chunk="${CSS.escape(`${row.source}#${row.sequence}`)}"]`);
        if (tr) tr.classList.add("current");
        if (tr && byUser) tr.scrollIntoView({ block: "nearest" });
      },
    });
  } catch (error) {
    fail($("#student-chat-status"), error);
  }
}

function renderChat(messages, replace) {
  const log = $("#student-chat");
  if (replace) show(log);
  for (const message of messages) {
    if (message.kind !== "chat" || log.querySelector(`[data-id="${CSS.escape(message.message_id)}"]`)) continue;
    const fromStudent = message.sender_id === message.student_id;
    log.append(el("li", { class: fromStudent ? "theirs" : "mine", dataset: { id: message.message_id } },
      el("span", { class: "who" }, fromStudent ? nameOf(message.student_id) : "You"), " ",
      el("time", {}, when(message.created_at)), " ",
      el("span", { class: "text" }, message.text)));
  }
}

main().catch((error) => fail($("#signin-status"), error));

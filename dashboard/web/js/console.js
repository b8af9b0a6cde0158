// The proctor console: sign in, exams, the live grid (grid.js), the alert feed, alert review
// (alert-view.js), the per-student view with its timeline and chat (student-view.js),
// interventions (interventions.js) and the report export.
//
// Live alerts come from the local server's SSE stream (config.live_alerts == "sse"); without
// it (AWS, where the Chime channel carries them) the alerts list is polled. An alert event
// costs no request: the feed, the tile (grid.js), the counts and the tab title are drawn from
// the alerts the console holds.
//
// Keys (outside text fields): N opens the next unreviewed alert (highest severity, oldest
// first), / goes to the search; in an alert (alert-view.js): C confirm, D dismiss,
// A acknowledge, S save, N save and open the next one.

import { $, api, currentSession, el, fail, freshSession, groupsOf, loadConfig, show, signInForm, signOut, step, useToken, when } from "./app.js";
import { refreshPanels, timelineEntry } from "./interventions.js";
import { mountLive } from "./chime-live.js";
import { SEVERITY, mountGrid } from "./grid.js";
import { announce, mountAnnounce } from "./announce.js";
import { STATUS_WORDS, mountAlertView } from "./alert-view.js";
import { mountStudentView } from "./student-view.js";

const GRID_SECONDS = 3;
const state = { config: null, exam: null, students: new Map(), alerts: new Map(), stream: null, timers: [], grid: null, polling: false };
const enc = encodeURIComponent;
let live = null; // the live video tiles (chime-live.js)
let alertView = null; // the alert dialog: evidence, numbers, reviews (alert-view.js)
let studentView = null; // the student dialog: timeline, alerts, chat (student-view.js)

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
  alertView = mountAlertView({
    alerts: state.alerts,
    examId: () => state.exam.exam_id,
    nameOf,
    reviewed: (alertId) => {
      markReviewed(alertId);
      alertsChanged();
    },
    next: nextUnreviewed,
  });
  studentView = mountStudentView({
    students: state.students,
    alerts: state.alerts,
    examId: () => state.exam.exam_id,
    nameOf,
    openAlert: (alertId) => alertView.open(alertId),
  });
  wireKeys();
  state.grid = mountGrid({
    list: $("#grid"),
    empty: $("#grid-empty"),
    counts: $("#grid-counts"),
    controls: $("#grid-controls"),
    onOpen: (studentId) => studentView.open(studentId),
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
    if (studentView.showing(message.student_id)) studentView.chat([message]);
  });
  stream.addEventListener("control", (event) => { // an intervention, a hand, an acknowledgement
    const message = JSON.parse(event.data);
    refreshPanels(message.student_id);
    if (studentView.showing(message.student_id)) studentView.timeline([message]);
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

function addAlert(alert, live = false) {
  const known = state.alerts.has(alert.alert_id);
  state.alerts.set(alert.alert_id, { ...state.alerts.get(alert.alert_id), ...alert });
  if (known) {
    markReviewed(alert.alert_id);
    return;
  }
  const item = el("li", { class: `alert ${alert.severity || ""}`, dataset: { alert: alert.alert_id, type: alert.type } },
    el("button", { type: "button", onclick: () => alertView.open(alert.alert_id) },
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

function wireKeys() {
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || !state.exam) return;
    const target = event.target;
    if (target.closest?.("textarea, select, input:not([type=radio]):not([type=checkbox])")) return;
    const key = event.key.toLowerCase();
    if ($("#alert-view").open) {
      if (!alertView.key(key)) return;
      event.preventDefault();
    } else if (!document.querySelector("dialog[open]")) {
      if (key === "n") alertView.openNext();
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

main().catch((error) => fail($("#signin-status"), error));

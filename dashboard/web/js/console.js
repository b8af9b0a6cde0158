// The proctor console: sign in, exams, the live grid, the alert feed, alert review, chat,
// interventions (interventions.js), the per-student timeline and the report export.
//
// Live alerts come from the local server's SSE stream (config.live_alerts == "sse"); without
// it (AWS, where the Chime channel carries them) the alerts list is polled.

import { $, api, currentSession, el, fail, freshSession, groupsOf, loadConfig, show, signInForm, signOut, step, useToken, when } from "./app.js";
import { mountPanel, refreshPanels, renderTimeline, timelineEntry, unmountPanel } from "./interventions.js";
import { mountLive } from "./chime-live.js";

const GRID_SECONDS = 3;
const state = { config: null, exam: null, students: new Map(), alerts: new Map(), stream: null, timers: [], open: null };
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
  const exam = new URLSearchParams(location.search).get("exam") || fragment.get("exam");
  if (exam) await openExam(exam);
  else await listExams();
}

// ---- exams ----------------------------------------------------------------------------------

async function listExams() {
  stopLive();
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
  await refreshGrid();
  const { alerts } = await api(`/exams/${enc(examId)}/alerts`);
  for (const alert of alerts) addAlert(alert);
  state.timers.push(setInterval(refreshGrid, GRID_SECONDS * 1000));
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
  if (!state.exam) return;
  let students;
  try {
    ({ students } = await api(`/exams/${enc(state.exam.exam_id)}/students`));
    show($("#exam-error"), "");
  } catch (error) {
    fail($("#exam-error"), error);
    return;
  }
  live.order(students); // live tiles: the students with an open alert first
  const grid = $("#grid");
  $("#grid-empty").hidden = students.length > 0;
  const cards = students.map((student) => {
    state.students.set(student.student_id, student);
    return card(student);
  });
  // Keep keyboard focus on the same student's card across refreshes.
  const focused = document.activeElement?.closest?.("[data-student]")?.dataset.student;
  show(grid, cards);
  if (focused) grid.querySelector(`[data-student="${CSS.escape(focused)}"] button`)?.focus();
}

function card(student) {
  const latest = student.latest || {};
  const attention = student.open_alerts > 0;
  const name = student.name || student.student_id;
  const session = [student.hand_raised_at ? "hand raised" : "", student.session_state && student.session_state !== "running" ? `session ${student.session_state}` : ""].filter(Boolean).join(" · ");
  const status = latest.status === undefined ? "no chunk yet"
    : latest.status === "ok" ? `${latest.faces ?? "?"} face(s), identity ${latest.identity ?? "?"}`
      : latest.status;
  return el("li", { class: attention ? "card attention" : "card", dataset: { student: student.student_id } },
    el("button", {
      type: "button",
      "aria-label": `${name}: risk ${student.risk.toFixed(1)}, ${student.open_alerts} open alert(s)${session ? `, ${session}` : ""}. Open timeline, chat and interventions.`,
      onclick: () => openStudent(student.student_id),
    },
    student.frame_url
      ? el("img", { src: student.frame_url, alt: `Latest frame of ${name}`, loading: "lazy" })
      : el("div", { class: "no-frame" }, "no frame yet"),
    el("span", { class: "name" }, name),
    el("span", { class: "meta" }, `risk ${student.risk.toFixed(1)} · chunk ${latest.sequence ?? "-"} · ${status}`),
    session ? el("span", { class: "session" }, session) : "",
    attention
      ? el("span", { class: "alerts" }, `${student.open_alerts} open: ${student.open_alert_types.join(", ")}`)
      : el("span", { class: "ok" }, "no open alert")));
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
    refreshGrid();
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
}

function nameOf(studentId) {
  return state.students.get(studentId)?.name || studentId;
}

function addAlert(alert, live = false) {
  const known = state.alerts.has(alert.alert_id);
  state.alerts.set(alert.alert_id, { ...state.alerts.get(alert.alert_id), ...alert });
  if (known) return;
  const item = el("li", { class: `alert ${alert.severity || ""}`, dataset: { alert: alert.alert_id, type: alert.type } },
    el("button", { type: "button", onclick: () => openAlert(alert.alert_id) },
      el("strong", {}, alert.type), " ",
      el("span", {}, nameOf(alert.student_id)), " ",
      el("span", { class: "muted" }, `${alert.severity || ""} · ${alert.type === "TALKING" ? talkingWhere(alert) : alertWhere(alert)} · ${when(alert.created_at)}`)));
  $("#feed").prepend(item);
  if (live) item.classList.add("new");
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
  show($("#alert-heading"), `${alert.type} (${alert.severity || "?"}), ${alert.status || "open"}`);
  show($("#alert-who"), `${nameOf(alert.student_id)} · ${alert.source || "camera"} chunks ${alert.first_sequence ?? "?"}–${alert.sequence ?? "?"} · ${when(alert.created_at)}`);
  renderNumbers(alert);
  renderReviews(alert);
  const frame = $("#evidence-frame");
  const video = $("#evidence-video");
  frame.removeAttribute("src");
  video.removeAttribute("src");
  $("#review-form").dataset.alert = alertId;
  show($("#review-status"), "");
  if (!dialog.open) dialog.showModal();
  mountPanel($("#alert-actions"), state.exam.exam_id, alert.student_id, nameOf(alert.student_id));
  try {
    const evidence = await api(`/exams/${enc(state.exam.exam_id)}/alerts/${enc(alertId)}/evidence`);
    frame.src = evidence.url;
    if (evidence.chunk_url) video.src = evidence.chunk_url;
  } catch (error) {
    fail($("#review-status"), error);
  }
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
  for (const [key, value] of Object.entries(flatten(evidence, "evidence"))) rows.push([key, value]);
  show($("#alert-numbers"), rows.map(([key, value]) => [el("dt", {}, key), el("dd", {}, typeof value === "number" ? String(Math.round(value * 1000) / 1000) : String(value))]));
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
    ? reviews.map((r) => el("li", {}, el("strong", {}, r.decision), ` by ${r.by} at ${when(r.at)}: `, el("span", { class: "note" }, r.note || "")))
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
      state.alerts.set(alertId, updated);
      renderReviews(updated);
      show($("#alert-heading"), `${updated.type} (${updated.severity || "?"}), ${updated.status}`);
      show($("#review-status"), `Saved: ${updated.status}.`);
      const item = $(`#feed [data-alert="${CSS.escape(alertId)}"]`);
      item?.classList.add(updated.status);
      form.note.value = "";
      refreshGrid();
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
    show($("#timeline"), results.map((r) => el("tr", { class: r.status },
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

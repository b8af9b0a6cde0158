// The proctor's interventions on one student: warn, pause, resume, end the session, lower a
// raised hand. The same panel sits in the student's view (from a tile of the grid) and in an
// alert's view (the alert's student). What it shows is the server's session
// (GET .../session): the state and why, a raised hand, each warning and whether the student
// acknowledged it. The console refreshes the panels when the live stream says a student's
// thread changed (an `event: control`), and with the grid where there is no stream (AWS).

import { api, el, fail, show, when } from "./app.js";

const enc = encodeURIComponent;
const panels = new Map(); // container -> {examId, studentId, name}

const ACTIONS = [
  // action, button text, when it applies, what the text box means for it
  ["warn", "Warn", (s) => s.state !== "ended", "the warning"],
  ["pause", "Pause exam", (s) => s.state === "running", "the reason the student is shown"],
  ["resume", "Resume exam", (s) => s.state === "paused", ""],
  ["end", "End session", (s) => s.state !== "ended", "the reason"],
  ["lower_hand", "Lower hand", (s) => s.hand_raised, ""],
];

function path(examId, studentId) {
  return `/exams/${enc(examId)}/students/${enc(studentId)}`;
}

/** Show the panel for a student in `container` (replacing what was there). */
export async function mountPanel(container, examId, studentId, name) {
  panels.set(container, { examId, studentId, name });
  const text = el("input", { name: "text", maxlength: "2000", autocomplete: "off" });
  const status = el("p", { class: "error", role: "alert" });
  const buttons = ACTIONS.map(([action, label]) => el("button", {
    type: "button",
    dataset: { action },
    "aria-label": `${label}: ${name}`,
    onclick: () => act(container, action, text, status),
  }, label));
  show(container,
    el("h3", {}, "Interventions"),
    el("p", { class: "session-state", role: "status", "aria-live": "polite" }, "Session: loading…"),
    el("ul", { class: "session-warnings", "aria-label": "Warnings sent" }),
    el("label", {}, "Warning or reason (shown to the student)", text),
    el("div", { class: "row" }, buttons),
    status);
  await refreshPanel(container);
}

/** Forget a panel (its dialog closed). */
export function unmountPanel(container) {
  panels.delete(container);
}

/** Refresh every panel showing `studentId` (every panel without one). */
export async function refreshPanels(studentId) {
  const shown = [...panels].filter(([, p]) => !studentId || p.studentId === studentId);
  await Promise.all(shown.map(([container]) => refreshPanel(container)));
}

async function refreshPanel(container) {
  const panel = panels.get(container);
  if (!panel) return;
  try {
    render(container, await api(`${path(panel.examId, panel.studentId)}/session`));
  } catch (error) {
    fail(container.querySelector("[role=alert]"), error);
  }
}

function render(container, session) {
  const panel = panels.get(container);
  container.dataset.state = session.state;
  container.dataset.hand = String(session.hand_raised);
  const parts = [`Session: ${session.state}`];
  if (session.reason) parts.push(`(${session.reason})`);
  if (session.since) parts.push(`since ${when(session.since)}`);
  if (session.hand_raised) parts.push(`· hand raised at ${when(session.hand_raised_at)}`);
  show(container.querySelector(".session-state"), parts.join(" "));
  show(container.querySelector(".session-warnings"), session.warnings.map((w) => el("li", {
    dataset: { warning: w.warning_id, acknowledged: String(Boolean(w.acknowledged_at)) },
  }, `Warning at ${when(w.at)}: `, el("q", { class: "note" }, w.text), " · ",
  w.acknowledged_at ? `acknowledged at ${when(w.acknowledged_at)}` : "not acknowledged yet")));
  for (const [action, , applies] of ACTIONS) {
    container.querySelector(`[data-action="${action}"]`).disabled = !applies(session);
  }
  panel.session = session;
}

async function act(container, action, input, status) {
  const panel = panels.get(container);
  const need = ACTIONS.find(([a]) => a === action)[3];
  const text = input.value.trim();
  if (need && !text) {
    show(status, `Write ${need} first.`);
    input.focus();
    return;
  }
  if (action === "end" && !confirm(`End ${panel.name}'s session? Their recording stops and cannot be restarted.`)) return;
  show(status, "");
  try {
    const body = text ? { action, text } : { action };
    render(container, await api(`${path(panel.examId, panel.studentId)}/interventions`, { method: "POST", json: body }));
    // what was sent goes; what the proctor typed while it was on its way stays
    if (input.value.trim() === text) input.value = "";
    await refreshPanels(panel.studentId); // the same student's other panel, if open
  } catch (error) {
    fail(status, error);
  }
}

const SAID = {
  warning: "warned",
  acknowledgement: "acknowledged the warning",
  pause: "paused the exam",
  resume: "resumed the exam",
  end: "ended the session",
  hand: "raised a hand",
  hand_lowered: "lowered the hand",
};

/** Append a thread's interventions (not chat, not alerts) to `list`, each once. */
export function renderTimeline(list, messages, nameOf) {
  for (const message of messages) {
    if (!(message.kind in SAID) || list.querySelector(`[data-id="${CSS.escape(message.message_id)}"]`)) continue;
    list.append(timelineEntry(message, nameOf));
  }
}

/** One entry of a student's timeline: who did what, when, and the text. */
export function timelineEntry(message, nameOf) {
  const who = message.sender_id === message.student_id ? nameOf(message.student_id) : "Proctor";
  return el("li", { class: "intervention", dataset: { id: message.message_id, kind: message.kind } },
    el("time", {}, when(message.created_at)), " ", `${who} ${SAID[message.kind]}`,
    message.text ? [": ", el("span", { class: "note" }, message.text)] : "");
}

// The console's student view (the #student-view dialog): one student's summary, chunk
// timeline and its strip (strip.js), alerts, the chat with the proctor and the interventions
// (interventions.js).

import { $, api, el, fail, show, when } from "./app.js";
import { mountPanel, renderTimeline, unmountPanel } from "./interventions.js";
import { renderStrip } from "./strip.js";

const enc = encodeURIComponent;
let view = null; // what the console gave mountStudentView
let showing = null; // the student whose view is open

/**
 * Wires the dialog once. `students` and `alerts`: the console's Maps by id (the alerts the view
 * loads are added); `examId()`: the open exam; `nameOf(studentId)`; `openAlert(alertId)`.
 * Returns `open(studentId)`, `showing(studentId)` (is the view open on that student?), and
 * `chat(messages)` / `timeline(messages)` to add what arrives live to the open view.
 */
export function mountStudentView({ students, alerts, examId, nameOf, openAlert }) {
  view = { students, alerts, examId, nameOf, openAlert };
  $("#student-view").addEventListener("close", () => {
    showing = null;
    unmountPanel($("#student-actions"));
  });
  $("#student-chat-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      const message = await api(`/exams/${enc(view.examId())}/students/${enc(showing)}/messages`, {
        method: "POST",
        json: { text: form.text.value },
      });
      form.reset();
      renderChat([message], false);
    } catch (error) {
      fail($("#student-chat-status"), error);
    }
  });
  return {
    open,
    showing: (studentId) => showing === studentId,
    chat: (messages) => renderChat(messages, false),
    timeline: (messages) => renderTimeline($("#student-interventions"), messages, view.nameOf),
  };
}

async function open(studentId) {
  showing = studentId;
  const student = view.students.get(studentId) || { student_id: studentId, risk: 0 };
  show($("#student-heading"), student.name || studentId);
  show($("#student-summary"), `Risk ${Number(student.risk).toFixed(1)} · joined ${when(student.joined_at)} · ${student.registered_at ? "registered" : "not registered"} · id ${studentId}`);
  show($("#student-chat"));
  show($("#timeline"));
  show($("#student-strip"));
  show($("#student-alerts"));
  show($("#student-interventions"));
  const dialog = $("#student-view");
  if (!dialog.open) dialog.showModal();
  mountPanel($("#student-actions"), view.examId(), studentId, student.name || studentId);
  const base = `/exams/${enc(view.examId())}`;
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
      view.alerts.set(a.alert_id, { ...view.alerts.get(a.alert_id), ...a });
      return el("li", { class: `alert ${a.severity || ""}` },
        el("button", { type: "button", onclick: () => view.openAlert(a.alert_id) },
          el("strong", {}, a.type), ` chunks ${a.first_sequence}–${a.sequence} · ${a.status}`));
    }));
    renderChat(messages, true);
    renderTimeline(show($("#student-interventions")), messages, view.nameOf);
    renderStrip($("#student-strip"), { results, alerts, messages }, {
      onAlert: (alert) => view.openAlert(alert.alert_id),
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
      el("span", { class: "who" }, fromStudent ? view.nameOf(message.student_id) : "You"), " ",
      el("time", {}, when(message.created_at)), " ",
      el("span", { class: "text" }, message.text)));
  }
}

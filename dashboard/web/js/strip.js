// One student's timeline strip (issue 16): camera chunks, speech, the browser's integrity
// events, alerts and the proctor's actions on one time axis, the flagged moments marked.
//
// Each alert is a button over the span it covers (first chunk to last): it opens the alert's
// evidence. A range input seeks along the axis (arrows, Page Up/Down, Home/End; or a click on
// the strip): the cursor shows where, the read-out says what the camera chunk there shows, and
// the caller is told which row it is (the console selects it in the table below, and scrolls
// to it when the proctor moved the cursor).

import { el, show, when } from "./app.js";

const CHUNK_MS = 5000;
const LANES = [
  ["video", "Camera"],
  ["speech", "Speech"],
  ["browser", "Browser"],
  ["alerts", "Alerts"],
  ["proctor", "Proctor"],
];
const INTEGRITY = "integrity";

/** The class a camera chunk is drawn with: what a proctor scanning the strip must see. */
function chunkClass(row) {
  if (row.status === "error") return "error";
  if (row.status !== "ok") return "idle";
  if (row.identity === "mismatch") return "mismatch";
  if (Number(row.faces) === 0) return "no-face";
  if (Number(row.faces) > 1) return "faces";
  return "ok";
}

function chunkWords(row) {
  if (row.status !== "ok") return `${row.status}${row.error_reason ? ` (${row.error_reason})` : ""}`;
  const faces = Number(row.faces);
  const who = row.identity && row.identity !== "unchecked" ? `, identity ${row.identity}` : "";
  return `${faces === 1 ? "one face" : `${faces} faces`}${who}`;
}

/** Adjacent spans of one lane and class become one (a calm hour is one bar, not 720). */
function merged(spans) {
  const out = [];
  for (const span of spans.sort((a, b) => a.start - b.start)) {
    const last = out[out.length - 1];
    if (last && !span.alert && !last.alert && last.cls === span.cls && span.start - last.end <= 1000) {
      last.end = Math.max(last.end, span.end);
    } else {
      out.push({ ...span });
    }
  }
  return out;
}

/**
 * Draw the strip into ``node``. ``results``: the student's result rows (chunks and integrity
 * events); ``alerts``; ``messages``: the thread (chat is left out, interventions are marked).
 * ``onAlert(alert)`` opens an alert; ``onChunk(row, byUser)`` is told the camera chunk at the
 * cursor (``byUser``: the proctor moved it).
 */
export function renderStrip(node, { results, alerts, messages }, { onAlert, onChunk }) {
  const at = (iso) => Date.parse(iso);
  const rows = results.filter((r) => Number.isFinite(at(r.captured_at)));
  const chunks = rows.filter((r) => r.source !== INTEGRITY).sort((a, b) => at(a.captured_at) - at(b.captured_at));
  const timeOf = new Map(rows.map((r) => [`${r.source}#${r.sequence}`, at(r.captured_at)]));
  const spans = [];
  for (const row of chunks) {
    const start = at(row.captured_at);
    spans.push({ lane: "video", start, end: start + CHUNK_MS, cls: chunkClass(row) });
    const speech = Number(row.speech_s);
    if (speech > 0) spans.push({ lane: "speech", start, end: start + CHUNK_MS, cls: speech >= 2.5 ? "loud" : "some" });
  }
  for (const row of rows.filter((r) => r.source === INTEGRITY)) {
    const start = at(row.captured_at);
    spans.push({ lane: "browser", start, end: start + (Number(row.duration_ms) || 0), cls: `event ${row.status}`, label: `${row.status} at ${when(row.captured_at)}` });
  }
  for (const alert of alerts) {
    const first = timeOf.get(`${alert.source}#${alert.first_sequence ?? alert.sequence}`) ?? at(alert.created_at);
    const last = timeOf.get(`${alert.source}#${alert.sequence}`);
    const end = Math.max(first + (Number(alert.duration_s) || 0) * 1000, (last ?? first) + (alert.source === INTEGRITY ? 0 : CHUNK_MS));
    spans.push({ lane: "alerts", start: first, end, cls: `${alert.severity || ""} ${alert.status || ""}`, alert });
  }
  for (const message of messages) {
    if (message.kind === "chat" || !Number.isFinite(at(message.created_at))) continue;
    const start = at(message.created_at);
    spans.push({ lane: "proctor", start, end: start, cls: "action", label: `${message.kind} at ${when(message.created_at)}` });
  }
  const drawn = spans.filter((s) => Number.isFinite(s.start));
  if (!drawn.length) {
    show(node, el("p", { class: "muted" }, "Nothing recorded yet."));
    return;
  }
  const t0 = Math.min(...drawn.map((s) => s.start));
  const t1 = Math.max(t0 + CHUNK_MS, ...drawn.map((s) => s.end));
  const pct = (t) => `${((t - t0) / (t1 - t0)) * 100}%`;
  const width = (s) => `${((Math.max(s.end, s.start) - s.start) / (t1 - t0)) * 100}%`;

  const cursor = el("div", { class: "strip-cursor", "aria-hidden": "true" });
  const readout = el("output", { class: "strip-readout", "aria-live": "polite" });
  const seek = el("input", {
    type: "range", min: "0", max: String(t1 - t0), step: String(CHUNK_MS), value: "0",
    "aria-label": "Seek the timeline", class: "strip-seek",
  });
  const lanes = LANES.map(([lane, label]) => {
    const track = el("div", { class: "strip-track", dataset: { lane } });
    for (const span of merged(drawn.filter((s) => s.lane === lane))) {
      const mark = span.alert
        ? el("button", {
          type: "button", class: `strip-mark alert ${span.cls}`, dataset: { alert: span.alert.alert_id },
          "aria-label": `${span.alert.type}, ${when(new Date(span.start).toISOString())} to ${when(new Date(span.end).toISOString())}, ${span.alert.status || "open"}`,
          title: `${span.alert.type} (${span.alert.status || "open"})`,
          onclick: (event) => { event.stopPropagation(); onAlert(span.alert); },
        })
        : el("span", { class: `strip-mark ${span.cls}`, title: span.label || span.cls });
      mark.style.left = pct(span.start);
      mark.style.width = width(span);
      track.append(mark);
    }
    return el("div", { class: "strip-lane" }, el("span", { class: "strip-label" }, label), track);
  });
  const tracks = el("div", { class: "strip-lanes" }, ...lanes, cursor);

  function moveTo(t, byUser = false) {
    const time = Math.min(Math.max(t, t0), t1);
    cursor.style.setProperty("--at", String((time - t0) / (t1 - t0)));
    seek.value = String(time - t0);
    let row = null;
    for (const chunk of chunks) if (at(chunk.captured_at) <= time) row = chunk;
    const stamp = when(new Date(time).toISOString());
    show(readout, row ? `${stamp} · ${row.source} chunk ${row.sequence}: ${chunkWords(row)}` : stamp);
    if (row) onChunk(row, byUser);
  }
  seek.addEventListener("input", () => moveTo(t0 + Number(seek.value), true));
  tracks.addEventListener("click", (event) => {
    const box = tracks.querySelector(".strip-track").getBoundingClientRect();
    moveTo(t0 + ((event.clientX - box.left) / box.width) * (t1 - t0), true);
  });
  show(node,
    el("div", { class: "strip-axis" }, el("span", {}, when(new Date(t0).toISOString())), el("span", {}, when(new Date(t1).toISOString()))),
    tracks, el("div", { class: "row" }, seek, readout));
  moveTo(t0);
}

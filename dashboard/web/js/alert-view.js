// The console's alert view (the #alert-view dialog): one alert's evidence - the frame with a box
// per face, the chunk's video, the registered photo -, its numbers in words, its reviews, and the
// review form (confirm / dismiss / acknowledge; save, or save and open the next unreviewed
// alert), with its keys C, D, A, S and N. The console keeps the alerts; this view reads and
// updates them and tells it when a review is saved.

import { $, api, currentSession, el, fail, show, when } from "./app.js";
import { mountPanel, unmountPanel } from "./interventions.js";

const enc = encodeURIComponent;
let view = null; // what the console gave mountAlertView

export const STATUS_WORDS = { open: "open", acknowledged: "acknowledged", confirmed: "confirmed misconduct", dismissed: "dismissed (false alarm)" };

/**
 * Wires the dialog once. `alerts`: the console's Map of alerts by id (updated here when an
 * alert's details load or a review is saved); `examId()`: the open exam; `nameOf(studentId)`;
 * `reviewed(alertId)`: after a review is saved; `next()`: the next unreviewed alert, or null.
 * Returns `open(alertId)`, `openNext()` and `key(key)` (true when the open dialog took the key).
 */
export function mountAlertView({ alerts, examId, nameOf, reviewed, next }) {
  view = { alerts, examId, nameOf, reviewed, next };
  $("#review-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const alertId = form.dataset.alert;
    try {
      const updated = await api(`/exams/${enc(view.examId())}/alerts/${enc(alertId)}/review`, {
        method: "POST",
        json: { decision: form.decision.value, note: form.note.value },
      });
      view.alerts.set(alertId, { ...view.alerts.get(alertId), ...updated });
      view.reviewed(alertId);
      if (event.submitter?.value === "next" && view.next()) {
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
  $("#alert-view").addEventListener("close", () => unmountPanel($("#alert-actions")));
  return { open, openNext, key };
}

/** The dialog's keys: C, D, A choose a decision; S saves; N saves and opens the next one. */
function key(pressed) {
  const form = $("#review-form");
  const decision = { c: "confirm", d: "dismiss", a: "acknowledge" }[pressed];
  if (decision) {
    form.querySelector(`input[value="${decision}"]`).checked = true;
    form.querySelector(`input[value="${decision}"]`).focus();
  } else if (pressed === "s" || pressed === "n") {
    form.requestSubmit(form.querySelector(`button[value="${pressed === "n" ? "next" : "save"}"]`));
  } else return false;
  return true;
}

async function openNext() {
  const next = view.next();
  if (next) return open(next.alert_id);
  const where = $("#alert-view").open ? $("#review-status") : $("#feed-state");
  show(where, "No unreviewed alert left.");
  return undefined;
}

async function open(alertId) {
  let alert = view.alerts.get(alertId);
  const dialog = $("#alert-view");
  try { // the live message carries a summary; the alerts list has every number and review
    const { alerts } = await api(`/exams/${enc(view.examId())}/alerts?student_id=${enc(alert.student_id)}`);
    alert = { ...alert, ...alerts.find((a) => a.alert_id === alertId) };
    view.alerts.set(alertId, alert);
  } catch (error) {
    fail($("#review-status"), error);
  }
  renderHeading(alert);
  show($("#alert-who"), `${view.nameOf(alert.student_id)} · ${alert.source || "camera"} chunks ${alert.first_sequence ?? "?"}–${alert.sequence ?? "?"} · ${when(alert.created_at)}`);
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
  mountPanel($("#alert-actions"), view.examId(), alert.student_id, view.nameOf(alert.student_id));
  try {
    const evidence = await api(`/exams/${enc(view.examId())}/alerts/${enc(alertId)}/evidence`);
    frame.addEventListener("load", () => drawFaceBoxes(frame, alert.evidence?.face_details || []), { once: true });
    if (evidence.url) frame.src = evidence.url; // absent: no frame kept, the chunk is the evidence
    if (evidence.chunk_url) video.src = evidence.chunk_url;
  } catch (error) {
    fail($("#review-status"), error);
  }
  try {
    const registered = await api(`/exams/${enc(view.examId())}/students/${enc(alert.student_id)}/photo`);
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

// The console's student grid, built for 200 students: one tile per student kept across polls,
// "last seen" and OFFLINE, the review state of each student's alerts, severity on the tile, a
// filter, a search by name, counts and a compact view.
//
// - A tile's <img> keeps its src while the roster names the same frame_key: the presigned link
//   changes on every poll, so replacing it would download an unchanged frame again.
// - OFFLINE: the roster says when the newest chunk arrived (last_seen, the server's time) and
//   what the server's clock read (now); each poll measures the server's clock against this
//   machine's, so a skewed laptop clock cannot make a student look offline. The age is the
//   console's clock (`now()`: tests inject `window.__proctorClock`) corrected by that skew,
//   minus last_seen. Past the policy's offline_after_s the tile shows OFFLINE until a newer
//   chunk arrives; the console repaints every second, without a request.
// - Alerts come from the console (`alertsOf`): open ≠ acknowledged ≠ confirmed ≠ dismissed.

import { el, show, when } from "./app.js";

export const SEVERITY = { low: 1, medium: 2, high: 3 };
const SEVERITY_NAME = ["", "low", "medium", "high"];
const FRAME_LINK_MS = 240_000; // a presigned frame link lives 300 s; renew an unloaded one before

/** The console's clock in ms (tests inject `window.__proctorClock = { now() {...} }`). */
export function now() {
  return (globalThis.__proctorClock ?? Date).now();
}

/** One student's alerts by review state, and the highest open severity (0: none open). */
export function reviewOf(alerts) {
  const by = { open: [], acknowledged: [], confirmed: [], dismissed: [] };
  for (const alert of alerts) (by[alert.status || "open"] ?? by.open).push(alert);
  const severity = Math.max(0, ...by.open.map((a) => SEVERITY[a.severity] || 0));
  const state = ["open", "confirmed", "acknowledged", "dismissed"].find((s) => by[s].length) || "none";
  return { ...by, severity, state };
}

function ago(seconds) {
  if (seconds < 59.5) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

function types(alerts) {
  return [...new Set(alerts.map((a) => a.type))].join(", ");
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function setData(node, key, value) {
  if (node.dataset[key] !== value) node.dataset[key] = value;
}

/**
 * @param {object} parts list (ul), empty (p), counts (p), controls (form with filter, search,
 *   compact), onOpen(studentId), alertsOf(studentId) -> alerts
 */
export function mountGrid({ list, empty, counts, controls, onOpen, alertsOf }) {
  const tiles = new Map(); // student id -> { node, button, parts, shownKey, srcAt }
  let roster = { students: [], now: null, offline_after_s: 10, exam_status: "created" };
  let skew = 0; // the server's clock minus this machine's, in ms
  const { filter, search, compact } = controls.elements;
  controls.addEventListener("submit", (event) => event.preventDefault());
  filter.addEventListener("change", render);
  search.addEventListener("input", render);
  compact.addEventListener("change", () => {
    list.classList.toggle("compact", compact.checked);
    render();
  });

  function update(next) {
    roster = next;
    skew = next.now ? Date.parse(next.now) - Date.now() : 0;
    const ids = new Set(next.students.map((s) => s.student_id));
    for (const [id, tile] of tiles) {
      if (!ids.has(id)) {
        tile.node.remove();
        tiles.delete(id);
      }
    }
    render();
  }

  function age(student) {
    if (!student.last_seen || !roster.now) return null;
    return Math.max(0, (now() + skew - Date.parse(student.last_seen)) / 1000);
  }

  function tile(id) {
    let found = tiles.get(id);
    if (found) return found;
    const parts = {
      img: null, // made with the first frame
      noFrame: el("div", { class: "no-frame" }, "no frame yet"),
      name: el("span", { class: "name" }),
      severity: el("span", { class: "sev", hidden: true }),
      seen: el("span", { class: "seen" }),
      meta: el("span", { class: "meta" }),
      session: el("span", { class: "session", hidden: true }),
      review: el("span", { class: "review" }),
    };
    const button = el("button", { type: "button", onclick: () => onOpen(id) },
      parts.noFrame, el("span", { class: "title" }, parts.name, parts.severity),
      parts.seen, parts.meta, parts.session, parts.review);
    found = { node: el("li", { class: "card", dataset: { student: id } }, button), button, parts, shownKey: null, srcAt: 0 };
    tiles.set(id, found);
    return found;
  }

  function paint(row) {
    const { student, review, offline, seconds } = row;
    const { node, button, parts } = row.tile;
    const name = student.name || student.student_id;
    setData(node, "severity", SEVERITY_NAME[review.severity] || "none");
    setData(node, "review", review.state);
    setData(node, "offline", String(offline));
    node.classList.toggle("attention", review.open.length > 0);
    // the frame: a new link only for a new frame (or an unloaded link about to expire)
    const stale = parts.img && !parts.img.complete && now() - row.tile.srcAt > FRAME_LINK_MS;
    if (student.frame_url && !compact.checked && (row.tile.shownKey !== student.frame_key || stale)) {
      if (!parts.img) {
        parts.img = el("img", { alt: "", loading: "lazy" });
        parts.noFrame.before(parts.img);
      }
      parts.img.src = student.frame_url;
      parts.img.alt = `Latest frame of ${name}`;
      row.tile.shownKey = student.frame_key;
      row.tile.srcAt = now();
    }
    // a chunk without a frame (after Stop, say) keeps the last frame shown
    parts.noFrame.hidden = Boolean(row.tile.shownKey);
    setText(parts.name, name);
    setText(parts.severity, review.severity ? SEVERITY_NAME[review.severity].toUpperCase() : "");
    parts.severity.hidden = !review.severity;
    let seen = "no chunk yet";
    if (seconds !== null) {
      seen = offline ? `OFFLINE · last chunk ${ago(seconds)} ago`
        : roster.exam_status === "started" ? `last chunk ${ago(seconds)} ago`
          : `last chunk at ${when(student.last_seen)}`;
    }
    setText(parts.seen, seen);
    parts.seen.classList.toggle("offline", offline);
    const latest = student.latest || {};
    const status = latest.status === undefined ? "" : latest.status === "ok"
      ? ` · ${latest.faces ?? "?"} face(s), identity ${latest.identity ?? "?"}` : ` · ${latest.status}`;
    setText(parts.meta, `risk ${Number(student.risk).toFixed(1)} · chunk ${latest.sequence ?? "-"}${status}`);
    const session = [student.hand_raised_at ? "hand raised" : "", student.session_state && student.session_state !== "running" ? `session ${student.session_state}` : ""].filter(Boolean).join(" · ");
    setText(parts.session, session);
    parts.session.hidden = !session;
    const outcome = [
      review.open.length ? `${review.open.length} open: ${types(review.open)}` : "",
      review.confirmed.length ? `confirmed: ${types(review.confirmed)}` : "",
      review.acknowledged.length ? `acknowledged: ${types(review.acknowledged)}` : "",
      review.dismissed.length ? `${review.dismissed.length} dismissed` : "",
    ].filter(Boolean).join(" · ") || "no alert";
    setText(parts.review, outcome);
    setData(parts.review, "state", review.state);
    const label = `${name}: ${seen}; ${outcome}; risk ${Number(student.risk).toFixed(1)}${session ? `; ${session}` : ""}. Open timeline, chat and interventions.`;
    if (button.getAttribute("aria-label") !== label) button.setAttribute("aria-label", label);
  }

  function attention(a, b) {
    return (b.review.severity - a.review.severity)
      || (b.review.open.length - a.review.open.length)
      || (Boolean(b.student.hand_raised_at) - Boolean(a.student.hand_raised_at))
      || (b.offline - a.offline)
      || (b.review.confirmed.length - a.review.confirmed.length)
      || (Number(b.student.risk) - Number(a.student.risk))
      || String(a.student.name || a.student.student_id).localeCompare(String(b.student.name || b.student.student_id));
  }

  function matches(row, query) {
    const wanted = filter.value;
    if (wanted === "flagged" && !row.review.open.length) return false;
    if (wanted === "offline" && !row.offline) return false;
    if (wanted === "confirmed" && !row.review.confirmed.length) return false;
    return !query || String(row.student.name || "").toLowerCase().includes(query) || row.student.student_id.toLowerCase().includes(query);
  }

  /** Repaint every tile from the last roster, the alerts and the clock (no request). */
  function render() {
    const rows = roster.students.map((student) => {
      const seconds = age(student);
      const offline = roster.exam_status === "started" && seconds !== null && seconds > roster.offline_after_s;
      return { student, seconds, offline, review: reviewOf(alertsOf(student.student_id)), tile: tile(student.student_id) };
    });
    rows.sort(attention);
    const query = search.value.trim().toLowerCase();
    let shown = 0;
    for (const row of rows) {
      paint(row);
      const visible = matches(row, query);
      if (row.tile.node.hidden === visible) row.tile.node.hidden = !visible;
      shown += visible;
    }
    reorder(rows.map((row) => row.tile.node));
    empty.hidden = shown > 0;
    setText(empty, rows.length ? "No student matches the filter." : "No student has joined yet.");
    const flagged = rows.filter((r) => r.review.open.length).length;
    const offline = rows.filter((r) => r.offline).length;
    const unreviewed = rows.reduce((n, r) => n + r.review.open.length, 0);
    const figures = [["students", rows.length, "students"], ["flagged", flagged, "flagged"], ["offline", offline, "offline"], ["unreviewed", unreviewed, "unreviewed alerts"]];
    if (shown !== rows.length) figures.push(["shown", shown, "shown"]);
    const text = figures.map(([, n, word]) => `${n} ${word}`).join(" · ");
    if (counts.dataset.text !== text) {
      counts.dataset.text = text;
      show(counts, figures.map(([key, n, word], i) => [i ? " · " : "", el("span", { dataset: { count: key } }, el("strong", {}, String(n)), ` ${word}`)]));
    }
  }

  function reorder(nodes) {
    const current = list.children;
    if (current.length === nodes.length && nodes.every((node, i) => current[i] === node)) return;
    const focused = document.activeElement?.closest?.("[data-student]")?.dataset.student;
    list.append(...nodes); // moves the tiles: their images stay loaded
    if (focused) tiles.get(focused)?.button.focus();
  }

  return { update, render };
}

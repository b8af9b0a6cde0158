// The student's side of interventions: the session as the server has it (GET .../session),
// shown on the exam page and kept up to date.
//
// Paused: the exam content is hidden and the reason shown; recording and uploads go on.
// Ended: `onEnded` stops the recording. A warning waits in a modal dialog until the student
// acknowledges it. The "Raise hand" button tells the proctor. The page follows the student's
// own stream (SSE, config.live_alerts == "sse": each `event: control` makes it look again at
// once); without it (AWS) it asks every POLL_MS. A reload shows the same state: it is the
// server's.

import { $, ApiError, api, currentSession, fail, freshSession, show } from "./app.js";

const POLL_MS = 1500; // without the stream: within 2 s of the proctor's action
const SAFETY_POLL_MS = 15_000; // with it: in case an event was missed while reconnecting

/**
 * @param {{config: object, base: string, onEnded: Function, onChat: Function}} options
 *   base: the student's API path (/exams/<exam>/students/<sub>)
 */
export function followSession({ config, base, onEnded, onChat }) {
  const view = new SessionView(base, onEnded);
  view.wire();
  if (config.live_alerts === "sse") follow(`${config.api_url}${base}/stream`, view, onChat);
  const timer = setInterval(() => view.refresh(), config.live_alerts === "sse" ? SAFETY_POLL_MS : POLL_MS);
  view.stopTimer = () => clearInterval(timer);
  return view;
}

function follow(url, view, onChat) {
  const token = currentSession()?.token;
  const stream = new EventSource(`${url}?access_token=${encodeURIComponent(token)}`);
  view.stream = stream;
  stream.addEventListener("open", () => view.refresh());
  stream.addEventListener("control", () => view.refresh());
  stream.addEventListener("chat", () => onChat?.());
  stream.addEventListener("error", async () => {
    if (stream.readyState !== EventSource.CLOSED || view.ended) return;
    await freshSession().catch(() => null); // refused: an expired token; renew and follow again
    setTimeout(() => view.ended || follow(url, view, onChat), 2000);
  });
}

class SessionView {
  constructor(base, onEnded) {
    this.base = base;
    this.onEnded = onEnded;
    this.session = null;
    this.ended = false;
    this.stream = null;
    this.looking = null; // the look at the server's session in flight (refresh)
    this.again = false;
    this.stopTimer = () => {};
  }

  wire() {
    const dialog = $("#warning-dialog");
    dialog.addEventListener("cancel", (event) => event.preventDefault()); // Esc: not an answer
    $("#acknowledge").addEventListener("click", () => this.acknowledge());
    $("#raise-hand").addEventListener("click", () => this.raiseHand());
  }

  /**
   * Look at the server's session again. One look at a time: an event during a look asks for
   * one more after it, so the last state applied is always read after the last event. (Two
   * looks side by side could answer out of order, and an answer from before a warning,
   * applied last, closed the warning's dialog until the next look, 15 s later.)
   */
  async refresh() {
    if (this.looking) {
      this.again = true;
      return this.looking;
    }
    this.looking = (async () => {
      do {
        this.again = false;
        try {
          this.apply(await api(`${this.base}/session`));
        } catch {
          // offline: the next look catches up; recording goes on either way
        }
      } while (this.again && !this.ended);
    })();
    try {
      await this.looking;
    } finally {
      this.looking = null;
    }
  }

  apply(session) {
    if (this.ended) return;
    const before = this.session?.state;
    this.session = session;
    document.body.dataset.session = session.state;
    if (session.state === "ended") {
      this.ended = true;
      this.stopTimer();
      this.stream?.close();
      if ($("#warning-dialog").open) $("#warning-dialog").close();
      this.onEnded(session);
      return;
    }
    const paused = session.state === "paused";
    $("#exam-content").hidden = paused;
    $("#paused").hidden = !paused;
    show($("#paused-reason"), paused ? `Reason: ${session.reason || "not given"}` : "");
    if (before === "paused" && !paused) show($("#session-status"), "Your proctor resumed the exam.");
    else if (paused) show($("#session-status"), "");
    const hand = $("#raise-hand");
    hand.disabled = session.hand_raised;
    show(hand, session.hand_raised ? "Hand raised" : "Raise hand");
    show($("#hand-status"), session.hand_raised ? "Your hand is raised: your proctor has been told." : "");
    this.showWarning();
  }

  /** The oldest warning not yet acknowledged, in the modal dialog. */
  showWarning() {
    const pending = this.session.warnings.find((w) => !w.acknowledged_at);
    const dialog = $("#warning-dialog");
    if (!pending) {
      if (dialog.open) dialog.close();
      return;
    }
    if (dialog.dataset.warning === pending.warning_id && dialog.open) return;
    dialog.dataset.warning = pending.warning_id;
    show($("#warning-text"), pending.text);
    show($("#acknowledge-status"), "");
    if (!dialog.open) dialog.showModal();
    $("#acknowledge").focus();
  }

  async acknowledge() {
    const dialog = $("#warning-dialog");
    const id = encodeURIComponent(dialog.dataset.warning);
    try {
      this.apply(await api(`${this.base}/warnings/${id}/acknowledgement`, { method: "POST", json: {} }));
    } catch (error) {
      fail($("#acknowledge-status"), error);
    }
  }

  async raiseHand() {
    try {
      this.apply(await api(`${this.base}/hand`, { method: "POST", json: {} }));
    } catch (error) {
      if (error instanceof ApiError && error.reason === "session_ended") return this.refresh();
      fail($("#hand-status"), error);
    }
  }
}

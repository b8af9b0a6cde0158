// Integrity events: what the browser knows beside the camera, reported to the API in batches.
//
// Kinds (the API's and the consumer's, proctoring/integrity.py): the exam tab hidden and the
// window unfocused (each reported when it ends, with how long it lasted), full screen left,
// copy / paste / context menu in the exam area, a second screen (screen.isExtended, where the
// browser can tell), the camera track ended, the network gone (reported when it is back).
//
// Every event gets an id of its own and the next `seq` (kept in localStorage with the events
// not yet sent): a network cut, a reload or a closed tab loses none. They are sent in `seq`
// order, at most MAX_BATCH a request, and leave the queue only once the API accepted them; a
// batch whose answer was lost is sent again and the consumer writes each event once (its id).
// A batch the API refuses as malformed (400, 413) would be refused forever: it is dropped (the
// API recorded it in its errors table) and the next one goes.

import { ApiError, api } from "./app.js";
import { pause } from "./outbox.js";

const MAX_BATCH = 50;
const MAX_KEPT = 5000; // events kept while offline; the oldest give way beyond that
const CAMERA_CHECK_MS = 1000;
const SEND_EVERY_MS = 2000; // events are sent this often at most (a burst of copies is one batch)

export class IntegrityReporter {
  /**
   * @param {{exam: string, student: string, area: Element, camera: MediaStream,
   *          now?: () => number, onChange?: Function}} options
   * `now` is the clock events are stamped with (milliseconds since the epoch).
   */
  constructor({ exam, student, area, camera, now = () => Date.now(), onChange }) {
    this.path = `/exams/${encodeURIComponent(exam)}/students/${encodeURIComponent(student)}/integrity`;
    this.queueKey = `proctoring-integrity-${exam}-${student}`;
    this.seqKey = `proctoring-integrity-seq-${exam}-${student}`;
    this.area = area;
    this.camera = camera;
    this.now = now;
    this.onChange = onChange;
    this.started = {}; // kind -> when an interval (hidden, blur, offline) began
    this.fullscreen = Boolean(document.fullscreenElement);
    this.cameraEnded = false;
    this.extended = false;
    this.sent = 0;
    this.wakeUp = null;
    this.stopped = false;
  }

  start() {
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") this.begin("hidden");
      else this.end("hidden");
    });
    window.addEventListener("blur", () => this.begin("blur"));
    window.addEventListener("focus", () => this.end("blur"));
    window.addEventListener("offline", () => this.begin("offline"));
    window.addEventListener("online", () => {
      this.end("offline");
      this.wakeUp?.();
    });
    document.addEventListener("fullscreenchange", () => {
      const now = Boolean(document.fullscreenElement);
      if (this.fullscreen && !now) this.record("fullscreen_exit", this.now());
      this.fullscreen = now;
    });
    for (const kind of ["copy", "paste", "contextmenu"]) {
      this.area.addEventListener(kind, (event) => {
        const text = kind === "paste" ? event.clipboardData?.getData("text") ?? "" : "";
        this.record(kind, this.now(), 0, kind === "paste" ? `${text.length} characters` : undefined);
      });
    }
    this.watchScreens();
    for (const track of this.camera.getVideoTracks()) {
      track.addEventListener("ended", () => this.cameraGone());
    }
    // stop() on a track fires no `ended`: its state says it
    this.cameraTimer = setInterval(() => {
      if (this.camera.getVideoTracks().some((t) => t.readyState === "ended")) this.cameraGone();
    }, CAMERA_CHECK_MS);
    this.run();
  }

  watchScreens() {
    const check = () => {
      if (screen.isExtended === true && !this.extended) this.record("second_screen", this.now(), 0, "screen.isExtended");
      this.extended = screen.isExtended === true;
    };
    check();
    screen.addEventListener?.("change", check);
  }

  cameraGone() {
    if (this.cameraEnded) return;
    this.cameraEnded = true;
    clearInterval(this.cameraTimer);
    this.record("camera_ended", this.now());
  }

  begin(kind) {
    if (this.started[kind] === undefined) this.started[kind] = this.now();
  }

  end(kind) {
    const began = this.started[kind];
    if (began === undefined) return;
    delete this.started[kind];
    this.record(kind, began, this.now() - began);
  }

  /** Keep one event (in IndexedDB's stead, localStorage: small, and written at once). */
  record(kind, at, durationMs = 0, detail = undefined) {
    const seq = Number(localStorage.getItem(this.seqKey) || 0);
    localStorage.setItem(this.seqKey, String(seq + 1));
    const event = {
      event_id: `ev-${crypto.randomUUID().replaceAll("-", "")}`,
      seq,
      kind,
      at: new Date(at).toISOString(),
      duration_ms: Math.max(0, Math.round(durationMs)),
    };
    if (detail) event.detail = detail;
    this.save([...this.queue(), event].slice(-MAX_KEPT));
    window.dispatchEvent(new CustomEvent("proctoring:integrity-recorded", { detail: event }));
    this.onChange?.(this);
    this.wakeUp?.();
  }

  queue() {
    return JSON.parse(localStorage.getItem(this.queueKey) || "[]");
  }

  save(events) {
    localStorage.setItem(this.queueKey, JSON.stringify(events));
  }

  get waiting() {
    return this.queue().length;
  }

  async run() {
    let backoff = 500;
    while (!this.stopped) {
      const batch = this.queue().slice(0, MAX_BATCH);
      if (!batch.length) {
        await pause(this, 60_000);
        continue;
      }
      try {
        await api(this.path, { method: "POST", json: { events: batch } });
        this.forget(batch);
        this.sent += batch.length;
        window.dispatchEvent(new CustomEvent("proctoring:integrity-sent", { detail: batch.map((e) => e.seq) }));
        backoff = 500;
        await pause(this, SEND_EVERY_MS);
      } catch (error) {
        if (error instanceof ApiError && (error.status === 400 || error.status === 413)) {
          console.warn(`integrity events ${batch[0].seq}-${batch.at(-1).seq} refused: ${error.message}`);
          this.forget(batch);
          continue;
        }
        await pause(this, backoff);
        backoff = Math.min(backoff * 2, 5_000);
      }
      this.onChange?.(this);
    }
  }

  /** Take what the API accepted out of the queue (events recorded meanwhile stay). */
  forget(batch) {
    const gone = new Set(batch.map((e) => e.event_id));
    this.save(this.queue().filter((e) => !gone.has(e.event_id)));
  }

  stop() {
    this.stopped = true;
    clearInterval(this.cameraTimer);
    this.wakeUp?.();
  }
}

/** The exam page's full screen button (a user's click: browsers refuse it otherwise). */
export function fullscreenButton(button) {
  const label = () => { button.textContent = document.fullscreenElement ? "Leave full screen" : "Full screen"; };
  button.addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else document.documentElement.requestFullscreen().catch(() => {});
  });
  document.addEventListener("fullscreenchange", label);
  label();
}

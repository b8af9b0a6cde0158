// Chunks waiting for upload, kept in IndexedDB so that a network cut (or a closed tab)
// loses none; uploaded strictly in sequence order per source with the API's presigned POSTs.
//
// A chunk leaves the outbox only after S3 accepted it. While the network is down the
// uploader waits (for the browser's `online` event, or a short backoff) and tries the
// oldest chunk again; chunks recorded meanwhile queue behind it.

import { api } from "./app.js";

const STORE = "chunks";
const FORMS_PER_REQUEST = 12;

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function key(source, sequence) {
  return `${source}|${String(sequence).padStart(9, "0")}`;
}

/** Wait `ms` at most; `owner.wakeUp()` ends the wait early (new work, the network is back). */
export function pause(owner, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      resolve();
    }
    owner.wakeUp = done;
  });
}

export class Outbox {
  static async open(name) {
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "key" });
    return new Outbox(await promised(request));
  }

  constructor(db) {
    this.db = db;
  }

  store(mode) {
    return this.db.transaction(STORE, mode).objectStore(STORE);
  }

  put(source, sequence, blob) {
    return promised(this.store("readwrite").put({ key: key(source, sequence), source, sequence, blob }));
  }

  /** The oldest waiting chunk of `source`, or undefined. */
  async oldest(source) {
    const range = IDBKeyRange.bound(`${source}|`, `${source}|~`);
    const cursor = await promised(this.store("readonly").openCursor(range));
    return cursor ? cursor.value : undefined;
  }

  remove(source, sequence) {
    return promised(this.store("readwrite").delete(key(source, sequence)));
  }

  count() {
    return promised(this.store("readonly").count());
  }
}

export class Uploader {
  /**
   * @param {Outbox} outbox
   * @param {{exam: string, student: string, source: string, onChange: Function}} options
   */
  constructor(outbox, { exam, student, source, onChange }) {
    this.outbox = outbox;
    this.path = `/exams/${encodeURIComponent(exam)}/students/${encodeURIComponent(student)}/uploads`;
    this.source = source;
    this.onChange = onChange;
    this.forms = new Map(); // sequence -> {form, expires}
    this.uploaded = 0;
    this.offline = false;
    this.lastError = "";
    this.bitsPerSecond = null;
    this.wakeUp = null;
    this.stopped = false;
    window.addEventListener("online", () => this.wake());
  }

  /** Something new to upload, or the network is back: look now. */
  wake() {
    this.wakeUp?.();
  }

  pause(ms) {
    return pause(this, ms);
  }

  async run() {
    let backoff = 500;
    while (!this.stopped) {
      const chunk = await this.outbox.oldest(this.source);
      if (!chunk) {
        await this.pause(60_000);
        continue;
      }
      try {
        await this.send(chunk);
        await this.outbox.remove(chunk.source, chunk.sequence);
        this.uploaded += 1;
        this.offline = false;
        this.lastError = "";
        backoff = 500;
      } catch (error) {
        if (error.reason === "session_ended") { // the proctor ended the session: final
          this.stopped = true;
          this.lastError = error.message;
          break;
        }
        this.offline = error instanceof TypeError || !navigator.onLine; // fetch: network failure
        this.lastError = error.message;
        await this.pause(backoff);
        backoff = Math.min(backoff * 2, 5_000);
      }
      this.onChange?.(this);
    }
  }

  async formFor(sequence) {
    const cached = this.forms.get(sequence);
    if (cached && cached.expires > Date.now()) return cached.form;
    let answer;
    try {
      answer = await this.askForms(sequence, FORMS_PER_REQUEST);
    } catch (error) {
      if (error.reason !== "already_uploaded") throw error;
      // one of the range is in S3 already: ask for this chunk alone (refused again if it is)
      answer = await this.askForms(sequence, 1);
    }
    const expires = Date.now() + (answer.expires_in - 30) * 1000;
    this.forms.clear();
    for (const form of answer.uploads) this.forms.set(form.sequence, { form, expires });
    return this.forms.get(sequence).form;
  }

  askForms(sequence, count) {
    return api(this.path, {
      method: "POST",
      json: { source: this.source, first_sequence: sequence, count, ext: "webm", content_type: "video/webm" },
    });
  }

  async send(chunk) {
    let form;
    try {
      form = await this.formFor(chunk.sequence);
    } catch (error) {
      // S3 has this chunk (its upload succeeded but the answer was lost): nothing left to send.
      if (error.reason === "already_uploaded") return;
      throw error;
    }
    const body = new FormData();
    for (const [name, value] of Object.entries(form.fields)) body.append(name, value);
    body.append("file", chunk.blob, `${chunk.sequence}.webm`);
    const started = performance.now();
    const response = await fetch(form.url, { method: "POST", body });
    if (!response.ok) {
      this.forms.delete(chunk.sequence); // expired or refused: ask for a fresh form next time
      throw new Error(`upload of chunk ${chunk.sequence} refused: HTTP ${response.status}`);
    }
    const seconds = (performance.now() - started) / 1000;
    this.bitsPerSecond = (chunk.blob.size * 8) / Math.max(seconds, 0.001);
    // For anyone following the uploads (the page's status line, tests): S3 has this chunk.
    window.dispatchEvent(new CustomEvent("proctoring:uploaded", {
      detail: { source: chunk.source, sequence: chunk.sequence, key: form.key, bytes: chunk.blob.size },
    }));
  }
}

// Self-contained chunks from a MediaStream.
//
// MediaRecorder with a timeslice gives blobs that cannot be decoded alone after the first
// (only the first carries the WebM header). So one recorder is started per chunk and
// stopped after `seconds`: every chunk is a complete WebM file with its own header and
// keyframe. The next recorder starts before the previous one is stopped, so no time is lost
// between chunks.

/** The video bitrate each recorded source asks for: what the upload must keep up with. */
export const RECORDING_BITS_PER_SECOND = 600_000;

const TYPES = ["video/webm;codecs=vp8", "video/webm;codecs=vp9", "video/webm"];
// With the microphone (the exam's policy asks for it): Opus beside the video, in one file.
const TYPES_WITH_AUDIO = ["video/webm;codecs=vp8,opus", "video/webm;codecs=vp9,opus", "video/webm"];

export function recordingType(withAudio = false) {
  const types = withAudio ? TYPES_WITH_AUDIO : TYPES;
  return types.find((type) => window.MediaRecorder && MediaRecorder.isTypeSupported(type)) || null;
}

export class ChunkRecorder {
  /**
   * @param {MediaStream} stream
   * @param {{seconds: number, firstSequence: number, onChunk: Function, bitsPerSecond?: number}} options
   *   onChunk(blob, sequence, startedAtMs) is called once per finished chunk, in order.
   */
  constructor(stream, { seconds, firstSequence, onChunk, bitsPerSecond = RECORDING_BITS_PER_SECOND }) {
    this.stream = stream;
    this.seconds = seconds;
    this.sequence = firstSequence;
    this.onChunk = onChunk;
    this.bitsPerSecond = bitsPerSecond;
    this.type = recordingType(stream.getAudioTracks().length > 0);
    this.running = false;
    this.timer = null;
    this.current = null;
  }

  start() {
    if (!this.type) throw new Error("This browser cannot record video (no WebM MediaRecorder).");
    this.running = true;
    this.next();
  }

  next() {
    const sequence = this.sequence++;
    const startedAt = Date.now();
    const parts = [];
    const recorder = new MediaRecorder(this.stream, {
      mimeType: this.type,
      videoBitsPerSecond: this.bitsPerSecond,
    });
    recorder.addEventListener("dataavailable", (event) => {
      if (event.data.size > 0) parts.push(event.data);
    });
    recorder.addEventListener("stop", () => {
      const blob = new Blob(parts, { type: "video/webm" });
      if (blob.size > 0) this.onChunk(blob, sequence, startedAt);
    });
    recorder.start();
    this.current = recorder;
    this.timer = setTimeout(() => {
      if (this.running) this.next();
      if (recorder.state !== "inactive") recorder.stop();
    }, this.seconds * 1000);
  }

  /** Stop recording; the chunk in progress is finished and delivered. */
  stop() {
    this.running = false;
    clearTimeout(this.timer);
    if (this.current && this.current.state !== "inactive") this.current.stop();
  }
}

// The student page's system check: the camera (and the microphone when the exam records it),
// the recorder's WebM support, screen sharing when the exam asks for it, and the upload speed
// against what recording needs (measured alone, beside the camera's check).

import { $, api, fail, show, step } from "./app.js";
import { RECORDING_BITS_PER_SECOND, recordingType } from "./recorder.js";

const SPEED_CHECK_BYTES = 256 * 1024; // about 3.5 s of one source at the recording bitrate
const SPEED_CHECK_RESOLUTION_MS = 20; // shorter transfers give a lower bound ("at least")

/**
 * Runs the check on the "check" step; resolves with `{ camera, screen }` (the streams) once the
 * student continues. Without a camera it never resolves: the exam cannot go on.
 */
export async function systemCheck(exam, base) {
  step("check");
  const status = $("#check-status");
  let camera = null;
  let screen = null;
  uploadSpeed(exam, base); // beside the camera's check: it needs nothing of it
  try {
    camera = await navigator.mediaDevices.getUserMedia({
      video: { width: 640, height: 480 },
      audio: Boolean(exam.audio), // the exam's policy asks for the microphone
    });
    $("#check-video").srcObject = camera;
    const track = camera.getVideoTracks()[0];
    const { width, height } = track.getSettings();
    show($("#check-camera"), `Camera: ✓ ${track.label || "camera"} (${width}×${height})`);
    const microphone = camera.getAudioTracks()[0];
    if (microphone) {
      show($("#check-microphone"), `Microphone: ✓ ${microphone.label || "microphone"} (recorded with the camera)`);
      $("#check-microphone").hidden = false;
    }
  } catch (error) {
    show($("#check-camera"), exam.audio ? "Camera and microphone: ✗ not available" : "Camera: ✗ not available");
    const what = exam.audio ? "camera and microphone" : "camera";
    fail(status, new Error(`The ${what} cannot be used (${error.name}). Allow ${what} access and reload the page.`));
    return new Promise(() => {}); // the exam cannot go on without a camera
  }
  const type = recordingType(camera.getAudioTracks().length > 0);
  show($("#check-recorder"), type ? `Recorder: ✓ ${type}` : "Recorder: ✗ this browser cannot record WebM video");
  const next = $("#check-continue");
  const share = $("#share-screen");
  const ready = () => {
    next.disabled = !type || (exam.screen && !screen);
  };
  if (exam.screen) {
    show($("#check-screen"), "Screen sharing: required by this exam, not shared yet");
    share.hidden = false;
    share.addEventListener("click", async () => {
      try {
        screen = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
        show($("#check-screen"), "Screen sharing: ✓ shared");
      } catch (error) {
        fail(status, new Error(`Screen sharing was refused (${error.name}); this exam needs it.`));
      }
      ready();
    });
  }
  ready();
  return new Promise((resolve) => next.addEventListener("click", () => resolve({ camera, screen }), { once: true }));
}

/**
 * Time the upload of a known payload to an endpoint that only receives it, less the time of
 * the same request with no payload (the round trip and the server's checks), and show the
 * rate against what recording needs: each source (camera, screen) at the recording bitrate.
 */
async function uploadSpeed(exam, base) {
  const line = $("#check-upload");
  const needed = RECORDING_BITS_PER_SECOND * (exam.screen ? 2 : 1);
  const need = `${(needed / 1e6).toFixed(1)} Mbit/s`;
  const path = `${base}/speed-check`;
  const timed = async (body) => {
    const started = performance.now();
    await api(path, { method: "POST", body });
    return performance.now() - started;
  };
  show(line, "Upload speed: measuring…");
  let bitsPerSecond;
  let atLeast;
  try {
    const empty = await timed(new Uint8Array(0));
    // random bytes (getRandomValues fills 64 KiB at most a call): nothing on the way shrinks them
    const parts = Array.from({ length: SPEED_CHECK_BYTES / 65536 }, () => crypto.getRandomValues(new Uint8Array(65536)));
    const full = await timed(new Blob(parts));
    // Under 20 ms the difference is mostly timer and server noise: say "at least" that rate.
    atLeast = full - empty < SPEED_CHECK_RESOLUTION_MS;
    bitsPerSecond = (SPEED_CHECK_BYTES * 8) / (Math.max(full - empty, SPEED_CHECK_RESOLUTION_MS) / 1000);
  } catch (error) {
    line.dataset.state = "failed";
    show(line, `Upload speed: ✗ not measured (${error.message}); recording needs ${need}`);
    return;
  }
  const mbps = `${atLeast ? "at least " : ""}${(bitsPerSecond / 1e6).toFixed(1)}`;
  line.dataset.bitsPerSecond = String(Math.round(bitsPerSecond));
  if (bitsPerSecond >= needed) {
    line.dataset.state = "ok";
    show(line, `Upload speed: ✓ ${mbps} Mbit/s (recording needs ${need})`);
  } else {
    line.dataset.state = "slow";
    show(line, `Upload speed: ⚠ ${mbps} Mbit/s, below the ${need} recording needs. `
      + "Chunks will queue on this computer and reach your proctor late: move closer to the router, "
      + "use a cable, or stop other uploads.");
  }
}

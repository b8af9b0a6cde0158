// Live view of a student's camera through the exam's Chime SDK meeting (AWS mode only).
//
// Loaded by the console only when /config.json says chime.enabled. The SDK is never fetched
// from a CDN: the deployment bundles amazon-chime-sdk-js (npm) into one ES module and serves
// it with the pages at js/vendor/amazon-chime-sdk.js (docs/architecture.md, "Web pages").
// Joining needs the proctor's attendee for the exam's meeting; the API does not hand that out
// yet, so this module stops with a clear message until it does.

const SDK = "./vendor/amazon-chime-sdk.js";

export async function openLiveView(config, exam, studentId, video, status) {
  if (!config.chime?.enabled) throw new Error("Live view needs Chime (AWS mode); it is off here.");
  if (!exam.meeting_id) throw new Error("The exam has no meeting: start it first.");
  let sdk;
  try {
    sdk = await import(SDK);
  } catch {
    throw new Error(`The Chime SDK bundle is not deployed with the pages (${SDK}).`);
  }
  const join = config.chime.join_url; // an API route returning {Meeting, Attendee} for the proctor
  if (!join) throw new Error("The API gives no attendee for the proctor yet: live view is not available.");
  const response = await fetch(join.replace("{exam_id}", encodeURIComponent(exam.exam_id)));
  const { Meeting, Attendee } = await response.json();
  const logger = new sdk.ConsoleLogger("live", sdk.LogLevel.WARN);
  const session = new sdk.DefaultMeetingSession(
    new sdk.MeetingSessionConfiguration(Meeting, Attendee),
    logger,
    new sdk.DefaultDeviceController(logger),
  );
  session.audioVideo.addObserver({
    videoTileDidUpdate(tile) {
      if (tile.boundExternalUserId === studentId && !tile.localTile) {
        session.audioVideo.bindVideoElement(tile.tileId, video);
        status.textContent = "Live";
      }
    },
  });
  session.audioVideo.start();
  return session;
}

// The entry esbuild bundles into dashboard/web/js/vendor/amazon-chime-sdk.js (`make web`):
// what chime-live.js uses of amazon-chime-sdk-js (npm, pinned in package-lock.json).
export {
  ConsoleLogger,
  DefaultDeviceController,
  DefaultMeetingSession,
  LogLevel,
  MeetingSessionConfiguration,
} from "amazon-chime-sdk-js";

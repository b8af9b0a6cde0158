// What each proctoring rule asks of the student, in plain words (the student page shows one
// line per rule the exam's policy enables for them, and uses the same words in a notice).

const INSTRUCTIONS = {
  NO_FACE: "Keep your face in view of the camera.",
  MULTIPLE_FACES: "Be alone: nobody else may be in view of the camera.",
  FACE_MISMATCH: "Take the exam yourself: the face on camera must be the one you registered.",
  LOOKING_AWAY: "Keep your eyes on your screen; a short glance away is fine.",
  EXTRA_PERSON: "Nobody else may be in the room in view of the camera.",
  PROHIBITED_OBJECT: "Keep phones, headphones, books and tablets out of view and out of reach.",
  FACE_NOT_CLEAR: "Keep your face clearly visible and well lit: nothing in front of it, no bright light behind you.",
  LEFT_EXAM: "Stay on the exam page: do not switch to other tabs or windows.",
  FULLSCREEN_EXIT: "Stay in full screen once you have entered it.",
  PASTE: "Do not paste text into the exam.",
  SECOND_SCREEN: "Use one screen only: disconnect any second monitor.",
  CAMERA_OFF: "Keep your camera on and connected.",
};

/** The instruction for a rule; an unknown rule (a newer server) is named as it is. */
export function instruction(rule) {
  return INSTRUCTIONS[rule] ?? `Proctoring rule ${rule}.`;
}

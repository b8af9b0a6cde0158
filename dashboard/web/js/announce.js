// New alerts announced beyond the tab title: an optional sound and an optional desktop
// notification. Each is the proctor's choice, off until they turn it on, and kept in this
// browser (localStorage). The sound is a short tone made by the page (Web Audio: no file to
// fetch), two tones for a high-severity alert; the notification names the rule and the
// student and, clicked, brings the console's tab forward. document.body.dataset.announced
// counts the alerts announced (for tests and assistive tools).

const KEY = "proctoring.announce";
const choices = { sound: false, notify: false };
let audio = null;

export function mountAnnounce(form) {
  Object.assign(choices, JSON.parse(localStorage.getItem(KEY) || "{}"));
  for (const name of ["sound", "notify"]) form.elements[name].checked = Boolean(choices[name]);
  form.addEventListener("change", async (event) => {
    const { name, checked } = event.target;
    if (name === "notify" && checked && "Notification" in window && Notification.permission !== "granted") {
      const answer = await Notification.requestPermission();
      if (answer !== "granted") {
        event.target.checked = false;
        form.querySelector(".announce-state").textContent = "Desktop notifications are blocked in this browser.";
        return;
      }
    }
    if (name === "sound" && checked) audio ??= new AudioContext(); // made on a click: allowed
    choices[name] = checked;
    localStorage.setItem(KEY, JSON.stringify(choices));
  });
}

export function announce(alert, name) {
  const done = Number(document.body.dataset.announced || 0) + 1;
  document.body.dataset.announced = String(done);
  if (choices.sound) {
    try {
      beep(alert.severity === "high" ? 2 : 1);
    } catch {
      // no audio output (a machine without one): the title and the feed still say it
    }
  }
  if (choices.notify && "Notification" in window && Notification.permission === "granted") {
    const note = new Notification(`${alert.type}: ${name}`, {
      body: `${alert.severity || ""} alert in the proctor console`.trim(),
      tag: alert.alert_id,
    });
    note.onclick = () => window.focus();
  }
}

function beep(times) {
  audio ??= new AudioContext();
  for (let i = 0; i < times; i += 1) {
    const start = audio.currentTime + i * 0.25;
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, start);
    gain.gain.exponentialRampToValueAtTime(0.001, start + 0.18);
    tone.connect(gain).connect(audio.destination);
    tone.start(start);
    tone.stop(start + 0.2);
  }
}

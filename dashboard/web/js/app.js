// What both pages share: configuration, Cognito sign-in, API calls, safe DOM building.
//
// Text that users typed (names, chat, notes, exam titles) only ever reaches the page
// through `el()` / `text()`, which set textContent: it is never parsed as HTML.

let configPromise = null;

/** The server's /config.json: API base URL, Cognito endpoint and app client, consent version. */
export function loadConfig() {
  configPromise ??= fetch("config.json", { cache: "no-store" }).then(async (response) => {
    if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
    return response.json();
  });
  return configPromise;
}

// ---- the signed-in user -------------------------------------------------------------------

const SESSION_KEY = "proctoring.session";

function decodeClaims(token) {
  const part = token.split(".")[1] || "";
  const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
}

/** The current session ({token, claims, refresh}) or null when absent or expired. */
export function currentSession() {
  const raw = sessionStorage.getItem(SESSION_KEY);
  if (!raw) return null;
  try {
    const session = JSON.parse(raw);
    if (session.claims.exp * 1000 < Date.now() + 30_000 && !session.refresh) return null; // else renewed
    return session;
  } catch {
    return null;
  }
}

/** Keep an id token (from sign-in, or the demo's link) and its refresh token for this tab. */
export function useToken(token, refresh = null) {
  const claims = decodeClaims(token);
  const session = { token, claims, refresh };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  return session;
}

export function signOut() {
  sessionStorage.removeItem(SESSION_KEY);
}

export function groupsOf(session) {
  return session?.claims?.["cognito:groups"] ?? [];
}

/** Cognito InitiateAuth over plain fetch: no SDK, no secret. */
async function initiateAuth(flow, parameters) {
  const config = await loadConfig();
  let response;
  try {
    response = await fetch(config.cognito_endpoint, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
      },
      body: JSON.stringify({ AuthFlow: flow, ClientId: config.client_id, AuthParameters: parameters }),
    });
  } catch {
    throw new TypeError("The sign-in service cannot be reached. Check your connection and try again.");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const kind = String(body.__type || "").split("#").pop();
    if (kind === "NotAuthorizedException" || kind === "UserNotFoundException") {
      throw new Error(flow === "USER_PASSWORD_AUTH" ? "Wrong email or password." : "Your session has ended: sign in again.");
    }
    throw new Error(`Sign-in failed: ${body.message || kind || `HTTP ${response.status}`}`);
  }
  if (!body.AuthenticationResult) {
    throw new Error(`Sign-in needs a step this page does not support (${body.ChallengeName}).`);
  }
  return body.AuthenticationResult;
}

/** Sign in with USER_PASSWORD_AUTH; the session keeps the refresh token for long exams. */
export async function signIn(email, password) {
  const result = await initiateAuth("USER_PASSWORD_AUTH", { USERNAME: email, PASSWORD: password });
  return useToken(result.IdToken, result.RefreshToken);
}

const REFRESH_BEFORE_MS = 5 * 60_000;

/** The session, its id token renewed (REFRESH_TOKEN_AUTH) when it ends within 5 minutes. */
export async function freshSession() {
  const session = currentSession();
  if (!session?.refresh || session.claims.exp * 1000 - Date.now() > REFRESH_BEFORE_MS) return session;
  try {
    const result = await initiateAuth("REFRESH_TOKEN_AUTH", { REFRESH_TOKEN: session.refresh });
    return useToken(result.IdToken, session.refresh);
  } catch (error) {
    if (error instanceof TypeError) return session; // offline: the current token still works
    signOut();
    throw error;
  }
}

// ---- the API ------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, message, reason) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

/** Call the exam service as the signed-in user; JSON (or a raw body) in, JSON out, ApiError on a refusal. */
export async function api(path, { method = "GET", json, body, raw = false } = {}) {
  const config = await loadConfig();
  const session = await freshSession();
  const headers = {};
  if (session) headers.Authorization = `Bearer ${session.token}`;
  if (json !== undefined) headers["Content-Type"] = "application/json";
  else if (body !== undefined) headers["Content-Type"] = "application/octet-stream";
  const response = await fetch(`${config.api_url}${path}`, {
    method,
    headers,
    body: json === undefined ? body : JSON.stringify(json),
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new ApiError(response.status, body.error || `HTTP ${response.status}`, body.reason || "");
  }
  return raw ? response : response.json();
}

// ---- DOM ----------------------------------------------------------------------------------

/** An element with properties and children; strings become text nodes, never markup. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's content with text or nodes (textContent semantics for strings). */
export function show(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Show one of the page's steps (sections with data-step) and focus its heading. */
export function step(name) {
  for (const section of document.querySelectorAll("[data-step]")) {
    section.hidden = section.dataset.step !== name;
  }
  const heading = document.querySelector(`[data-step="${name}"] h2`);
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

/** Report a failure in a status element (role=alert) and the console. */
export function fail(node, error) {
  console.error(error);
  show(node, error instanceof Error ? error.message : String(error));
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleTimeString();
}

/** Wire a sign-in form; resolves with the session once the user signed in. */
export function signInForm(form, status, group) {
  return new Promise((resolve) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      show(status, "Signing in…");
      try {
        const session = await signIn(form.email.value.trim(), form.password.value);
        if (group && !groupsOf(session).includes(group) && !groupsOf(session).includes("admin")) {
          signOut();
          throw new Error(`This page is for the ${group} group; you are in ${groupsOf(session).join(", ") || "no group"}.`);
        }
        show(status, "");
        form.reset();
        resolve(session);
      } catch (error) {
        fail(status, error);
      }
    });
  });
}

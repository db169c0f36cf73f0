// The server's API: fetch with the access token as a bearer header, problem+json answers
// turned into ApiError, the error and notice banners, and the token form (kept in
// sessionStorage) that a 401 brings up.
import { state } from "./state.js";
import { $ } from "./dom.js";

const TOKEN_KEY = "floodgate.token";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `The server answered HTTP ${status}.`);
    this.status = status;
    this.problem = problem;
  }
}

export function authHeaders(extra) {
  const h = { ...extra };
  if (state.token) h.Authorization = `Bearer ${state.token}`;
  return h;
}

export async function api(method, path, body, signal) {
  const init = { method, signal, cache: "no-store", headers: authHeaders({ Accept: "application/json" }) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, { detail: `Cannot reach the server (${e.message}).` });
  }
  if (!res.ok) {
    let problem = {};
    try { problem = (await res.json()) || {}; } catch { /* not JSON */ }
    const err = new ApiError(res.status, typeof problem === "object" ? problem : {});
    if (res.status === 401) needToken(err);
    throw err;
  }
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

function showError(text) {
  $("#error-text").textContent = text;
  $("#error").hidden = false;
}

let noticeTimer = 0;
export function notice(text) {
  const n = $("#notice");
  n.textContent = text;
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { n.hidden = true; }, 6000);
}

/** Show an error in the banner. 401 is handled by the token form; a 403 on an action means read-only. */
export function report(err, isAction = false) {
  if (!err || err.name === "AbortError") return;
  if (err.status === 401) return;
  if (err.status === 403 && isAction) return showError(`Read-only access: ${err.message}`);
  showError(err.message || String(err));
}

export function needToken(err) {
  const form = $("#token-form");
  const rejected = Boolean(state.token);
  if (rejected) {
    state.token = "";
    sessionStorage.removeItem(TOKEN_KEY);
  }
  if (form.hidden) {
    // The first 401 explains; later ones (other requests in flight) leave the message alone.
    $("#token-msg").textContent = rejected
      ? "That token was not accepted. Enter another one."
      : err?.problem?.detail || "This server needs an access token.";
    form.hidden = false;
    $("#token-input").focus();
  }
}

/** Reads the token this tab stored before. */
export function loadToken() {
  state.token = sessionStorage.getItem(TOKEN_KEY) || "";
}

/** Handles the token form; `onToken()` then restarts what needs the token (main.js: stream, view). */
export function watchTokenForm(onToken) {
  $("#token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("#token-input");
    const token = input.value.trim();
    if (!token) return;
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    input.value = "";
    $("#token-form").hidden = true;
    $("#error").hidden = true;
    state.accessPromise = null;
    onToken();
  });
}

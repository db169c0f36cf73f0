// The router and view plumbing: hash routes (#/overview, #/jobs, #/jobs/<id>, #/failures) to
// the views main.js names, the mounted view, each overview as it arrives (clock skew, access
// level, queue names), and the views' refresh runs.
import { state } from "./state.js";
import { $, el } from "./dom.js";
import { absolute } from "./format.js";
import { api, report } from "./api.js";

let views = {}; // route name -> view constructor(main, route), from setViews

export let current = null; // the mounted view

/** Names the views: {overview, jobs, job, failures} (main.js; the views import this module). */
export function setViews(table) {
  views = table;
}

export function applyOverview(ov) {
  if (!ov || typeof ov !== "object") return;
  state.overview = ov;
  const at = Date.parse(ov.at);
  if (!Number.isNaN(at)) {
    state.skewMs = at - Date.now();
    const t = $("#updated");
    t.dateTime = ov.at;
    t.title = absolute(ov.at);
    t.textContent = new Date(at).toLocaleTimeString();
  }
  setAccess(ov.access === "admin" ? "admin" : "read");
  const names = (ov.queues || []).map((q) => q.queue);
  const list = $("#queue-names");
  if (list && list.children.length !== names.length) list.replaceChildren(...names.map((n) => el("option", { value: n })));
  const v = current;
  if (!v) return;
  v.onOverview?.(ov);
  if (v.refresh && v.refreshEvery && !v.busy && Date.now() - v.lastRefresh >= v.refreshEvery) runRefresh(v, true);
}

function setAccess(access) {
  if (access === state.access) return;
  state.access = access;
  document.body.classList.toggle("read-only", access === "read");
  // Views that rendered buttons for another access level are rebuilt.
  if (current && current.access !== undefined && current.access !== access) route();
}

/** Resolves once the access level is known (from the stream or one GET /v1/dashboard). */
export function ensureAccess() {
  if (state.access) return Promise.resolve(state.access);
  if (!state.accessPromise) {
    state.accessPromise = api("GET", "/v1/dashboard").then(
      (ov) => { applyOverview(ov); return state.access; },
      (err) => { state.accessPromise = null; throw err; },
    );
  }
  return state.accessPromise;
}

export function baseView(name, title) {
  const ctrl = new AbortController();
  return {
    name, title, signal: ctrl.signal, access: undefined,
    refresh: null, refreshEvery: 0, lastRefresh: 0, busy: false, quiet: false, loaded: false, lastJson: "",
    cleanup: null, message: null, // message(text): shown in place of data that could not be loaded
    destroy() { ctrl.abort(); if (this.cleanup) this.cleanup(); },
  };
}

/** Run view.refresh(); repeated failures of periodic refreshes are reported once. */
export async function runRefresh(v, periodic = false) {
  if (!v || !v.refresh) return;
  v.busy = true;
  v.lastRefresh = Date.now();
  try {
    await v.refresh();
    v.quiet = false;
    v.loaded = true;
  } catch (err) {
    if (err.name === "AbortError") return;
    if (!(periodic && v.quiet)) report(err);
    v.quiet = true;
    if (!v.loaded && v.message) v.message(err.status === 401 ? "Enter an access token above to see this." : `Could not load: ${err.message}`);
  } finally {
    v.busy = false;
  }
}

function parseHash() {
  const h = location.hash.replace(/^#\/?/, "");
  const q = h.indexOf("?");
  const path = q < 0 ? h : h.slice(0, q);
  const params = new URLSearchParams(q < 0 ? "" : h.slice(q + 1));
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "jobs" && parts[1]) {
    let id = parts[1];
    try { id = decodeURIComponent(id); } catch { /* keep it as typed */ }
    return { name: "job", id, params };
  }
  if (parts[0] === "jobs") return { name: "jobs", params };
  if (parts[0] === "failures") return { name: "failures", params };
  return { name: "overview", params };
}

export function route() {
  if (current) current.destroy();
  const r = parseHash();
  const main = $("#view");
  main.replaceChildren();
  const section = r.name === "job" ? "jobs" : r.name;
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  current = views[r.name](main, r);
  document.body.dataset.view = r.name;
  document.title = `${current.title} · floodgate`;
}

/** Set the hash; re-route even when it is unchanged (e.g. "Apply" with the same filters). */
export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// The live stream: /v1/dashboard/events read with fetch (so the token can go in a header) and
// parsed as text/event-stream; each `overview` event updates the page. Reconnects after 1, 2,
// 4, 8 then every 10 s, treats 15 s of silence as a drop, and pauses while the tab is hidden.
import { state } from "./state.js";
import { $ } from "./dom.js";
import { ApiError, authHeaders, needToken } from "./api.js";
import { applyOverview } from "./router.js";

const live = { ctrl: null, timer: 0, failures: 0, lastEvent: 0 };

function setLive(status, text = status) {
  const s = $("#live");
  s.dataset.status = status;
  if (s.textContent !== text) s.textContent = text;
}

function stopStream() {
  clearTimeout(live.timer);
  const c = live.ctrl;
  live.ctrl = null; // mark as stopped before aborting so the reader does not retry
  if (c) c.abort();
}

/** Line-based text/event-stream parser; calls onEvent(type, data) for each complete event. */
function sseParser(onEvent) {
  let buf = "";
  let type = "";
  let data = [];
  return (chunk) => {
    buf += chunk;
    const lines = buf.split(/\r\n|\r|\n/);
    buf = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (data.length) onEvent(type || "message", data.join("\n"));
        type = "";
        data = [];
      } else if (!line.startsWith(":")) {
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        let value = i < 0 ? "" : line.slice(i + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") type = value;
        else if (field === "data") data.push(value);
      }
    }
  };
}

async function readStream(ctrl) {
  const res = await fetch("/v1/dashboard/events", {
    headers: authHeaders({ Accept: "text/event-stream" }), signal: ctrl.signal, cache: "no-store",
  });
  if (res.status === 401) {
    let problem = {};
    try { problem = (await res.json()) || {}; } catch { /* not JSON */ }
    throw new ApiError(401, problem);
  }
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const feed = sseParser((type, data) => {
    if (type !== "overview" || live.ctrl !== ctrl) return;
    let ov;
    try { ov = JSON.parse(data); } catch { return; }
    live.failures = 0;
    live.lastEvent = Date.now();
    setLive("live");
    applyOverview(ov);
  });
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    feed(decoder.decode(value, { stream: true }));
  }
}

export async function connect() {
  stopStream();
  if (document.hidden) return setLive("paused");
  const ctrl = new AbortController();
  live.ctrl = ctrl;
  live.lastEvent = Date.now();
  if (live.failures) setLive("reconnecting");
  else if ($("#live").dataset.status !== "live") setLive("connecting");
  try {
    await readStream(ctrl);
  } catch (err) {
    if (live.ctrl !== ctrl) return; // stopped or superseded
    if (err.status === 401) {
      live.ctrl = null;
      needToken(err);
      return setLive("auth", "token needed");
    }
  }
  if (live.ctrl === ctrl) retryLater();
}

/** Drop the connection and try again after 1 s, 2 s, 4 s, 8 s, then every 10 s. */
function retryLater() {
  stopStream();
  const delay = Math.min(10000, 1000 * 2 ** live.failures);
  live.failures += 1;
  setLive("reconnecting");
  live.timer = setTimeout(connect, delay);
}

export function onVisibility() {
  if (document.hidden) {
    stopStream();
    setLive("paused");
  } else if (!state.token && $("#live").dataset.status === "auth") {
    // still waiting for a token
  } else {
    live.failures = 0;
    connect(); // the first event is a full snapshot: that is the catch-up
  }
}

/** A stream that stays silent for 15 s is treated as dropped. */
export function watchdog() {
  if (live.ctrl && !document.hidden && Date.now() - live.lastEvent > 15000) retryLater();
}

"use strict";
/*
 * floodgate live dashboard. Plain ES2020: no build step, no framework, no modules.
 *
 * Sections: 1 constants & state · 2 DOM/format helpers · 3 API, errors, banners ·
 * 4 token form · 5 live stream (fetch + SSE parser) · 6 router & view plumbing ·
 * 7 overview · 8 jobs · 9 job detail · 10 failures · 11 actions · 12 start-up.
 *
 * Server strings reach the DOM only as text nodes, textContent or setAttribute
 * values; innerHTML is never used.
 */
(() => {
  // ---------------------------------------------------------------- 1. constants & state
  const TOKEN_KEY = "floodgate.token";
  const QUEUE_STATES = ["pending", "running", "succeeded", "failed", "dead", "cancelled"];
  const FILTER_KEYS = ["state", "queue", "kind", "error", "path", "value"];
  const RETRYABLE = ["dead", "cancelled"]; // filter states a bulk retry acts on
  const CANCELLABLE = ["pending", "running", "failed"]; // filter states a bulk cancel acts on
  const JOB_RETRYABLE = new Set(["dead", "cancelled"]);
  const JOB_CANCELLABLE = new Set(["pending", "scheduled", "running", "failed_will_retry"]);

  const state = {
    token: "",
    access: null, // "admin" | "read" | null (not known yet)
    overview: null, // latest Overview
    skewMs: 0, // server clock minus ours, from Overview.at
    lastJobsHash: "#/jobs", // where "back" goes from a job
    accessPromise: null,
  };
  let current = null; // the mounted view

  // ---------------------------------------------------------------- 2. DOM & format helpers
  const $ = (sel, root = document) => root.querySelector(sel);

  /** el("a", {href: "#/x", class: "c"}, "text", child, [more]) — attrs via setAttribute, text as text nodes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c == null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const wrap = (table) => el("div", { class: "table-wrap" }, table);
  /** <thead> from column specs: "Label" or ["Label", "class"]; falsy specs are skipped. */
  const thead = (cols) => el("thead", {}, el("tr", {}, cols.filter(Boolean).map((c) =>
    el("th", { scope: "col", class: Array.isArray(c) ? c[1] : null }, Array.isArray(c) ? c[0] : c))));
  const emptyRow = (cols, text) => el("tr", {}, el("td", { colspan: cols, class: "muted" }, text));
  const nf = new Intl.NumberFormat();
  const plural = (n, word) => `${nf.format(n)} ${word}${n === 1 ? "" : "s"}`;
  const now = () => Date.now() + state.skewMs;

  function fmtDuration(sec) {
    if (sec == null || !Number.isFinite(sec)) return "—";
    if (sec < 1) return `${Math.round(sec * 1000)} ms`;
    if (sec < 60) return `${sec < 10 ? sec.toFixed(1) : Math.round(sec)} s`;
    const m = Math.floor(sec / 60);
    if (m < 10) return `${m} min ${Math.floor(sec % 60)} s`;
    if (m < 60) return `${m} min`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h} h ${m % 60} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }

  function absolute(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
  }

  function ago(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return "—";
    const s = (now() - t) / 1000;
    return s >= 0 ? `${fmtDuration(s)} ago` : `in ${fmtDuration(-s)}`;
  }

  /** A <time> with relative text and the absolute time as title, or "—". */
  const timeEl = (iso) => (iso ? el("time", { datetime: iso, title: absolute(iso) }, ago(iso)) : "—");
  const jsonBlock = (id, value) => el("pre", { id, class: "json" }, JSON.stringify(value ?? null, null, 2));
  const stateBadge = (s) => el("span", { class: `badge state-${s}` }, s);

  function qs(params) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v != null && v !== "") p.set(k, String(v));
    const s = p.toString();
    return s ? `?${s}` : "";
  }

  function pickFilters(params) {
    const f = {};
    for (const k of FILTER_KEYS) {
      const v = params.get(k);
      if (v) f[k] = v;
    }
    return f;
  }

  const jobsHash = (filters) => `#/jobs${qs(filters)}`;

  /**
   * Replace `container`'s children with build() unless `data` is unchanged since the view's last
   * render, then put focus back on the equivalent link/button (live refreshes must not steal focus).
   */
  function renderChanged(v, container, data, build) {
    const json = JSON.stringify(data);
    if (json === v.lastJson) return;
    v.lastJson = json;
    const key = (n) => [n.tagName, n.dataset.action, n.dataset.jobId, n.dataset.queue, n.getAttribute("href")].join("|");
    const a = document.activeElement;
    const k = a && a !== document.body && container.contains(a) ? key(a) : null;
    container.replaceChildren(...[build()].flat(Infinity).filter(Boolean));
    if (k) for (const n of container.querySelectorAll("a, button")) if (key(n) === k) return n.focus();
  }

  // ---------------------------------------------------------------- 3. API, errors, banners
  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || `The server answered HTTP ${status}.`);
      this.status = status;
      this.problem = problem;
    }
  }

  function authHeaders(extra) {
    const h = { ...extra };
    if (state.token) h.Authorization = `Bearer ${state.token}`;
    return h;
  }

  async function api(method, path, body, signal) {
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
  function notice(text) {
    const n = $("#notice");
    n.textContent = text;
    n.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { n.hidden = true; }, 6000);
  }

  /** Show an error in the banner. 401 is handled by the token form; a 403 on an action means read-only. */
  function report(err, isAction = false) {
    if (!err || err.name === "AbortError") return;
    if (err.status === 401) return;
    if (err.status === 403 && isAction) return showError(`Read-only access: ${err.message}`);
    showError(err.message || String(err));
  }

  // ---------------------------------------------------------------- 4. token form
  function needToken(err) {
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

  function onTokenSubmit(e) {
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
    connect();
    route();
  }

  // ---------------------------------------------------------------- 5. live stream
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

  async function connect() {
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

  function onVisibility() {
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
  function watchdog() {
    if (live.ctrl && !document.hidden && Date.now() - live.lastEvent > 15000) retryLater();
  }

  // ---------------------------------------------------------------- 6. router & view plumbing
  function applyOverview(ov) {
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
  function ensureAccess() {
    if (state.access) return Promise.resolve(state.access);
    if (!state.accessPromise) {
      state.accessPromise = api("GET", "/v1/dashboard").then(
        (ov) => { applyOverview(ov); return state.access; },
        (err) => { state.accessPromise = null; throw err; },
      );
    }
    return state.accessPromise;
  }

  function baseView(name, title) {
    const ctrl = new AbortController();
    return {
      name, title, signal: ctrl.signal, access: undefined,
      refresh: null, refreshEvery: 0, lastRefresh: 0, busy: false, quiet: false, loaded: false, lastJson: "",
      cleanup: null, message: null, // message(text): shown in place of data that could not be loaded
      destroy() { ctrl.abort(); if (this.cleanup) this.cleanup(); },
    };
  }

  /** Run view.refresh(); repeated failures of periodic refreshes are reported once. */
  async function runRefresh(v, periodic = false) {
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

  function route() {
    if (current) current.destroy();
    const r = parseHash();
    const main = $("#view");
    main.replaceChildren();
    const section = r.name === "job" ? "jobs" : r.name;
    for (const a of document.querySelectorAll("[data-nav]")) {
      if (a.dataset.nav === section) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    const views = { overview: OverviewView, jobs: JobsView, job: JobDetailView, failures: FailuresView };
    current = views[r.name](main, r);
    document.body.dataset.view = r.name;
    document.title = `${current.title} · floodgate`;
  }

  // ---------------------------------------------------------------- 7. overview
  function OverviewView(main) {
    const v = baseView("overview", "Overview");
    v.access = state.access;
    const admin = v.access === "admin";
    v.refresh = async () => applyOverview(await api("GET", "/v1/dashboard", undefined, v.signal));

    const protective = el("p", { id: "protective", class: "banner warn", hidden: true });
    const queuesBody = el("tbody");
    const queues = el("table", { id: "queues" },
      el("caption", {}, "Queues"),
      thead(["Queue", ...QUEUE_STATES.map((s) => [s, "num"]), ["Oldest pending", "num"], admin && "Actions"]),
      queuesBody);

    const tput = chartFigure("chart-throughput", "Throughput (jobs per second)",
      "Line chart of completed and failed jobs per second over the last 15 minutes");
    const lat = chartFigure("chart-latency", "Enqueue-to-start latency (ms)",
      "Line chart of p50 and p99 enqueue-to-start latency in milliseconds over the last 15 minutes");
    const limitersBody = el("tbody");
    const breakersBody = el("tbody");

    main.append(
      el("h2", { class: "sr-only" }, "Overview"),
      protective,
      el("section", { class: "card" }, wrap(queues)),
      el("div", { class: "grid2" }, tput.figure, lat.figure),
      el("div", { class: "grid2" },
        el("section", { class: "card" }, el("h3", {}, "Concurrency limiters"), wrap(el("table", { id: "limiters" },
          thead(["Limiter", ["Active", "num"], ["Queued", "num"], ["Limit", "num"], "Use"]), limitersBody))),
        el("section", { class: "card" }, el("h3", {}, "Circuit breakers"), wrap(el("table", { id: "breakers" },
          thead(["Host", "State", ["For", "num"]]), breakersBody)))),
    );

    const charts = [
      makeChart(tput.host, [["completed/s", "--ok"], ["failed/s", "--bad"]], "/s"),
      makeChart(lat.host, [["p50", "--accent"], ["p99", "--warn"]], "ms"),
    ];
    v.cleanup = () => charts.forEach((c) => c && c.destroy());
    const updateQueues = queueRows(queuesBody, admin);

    v.onOverview = (ov) => {
      updateQueues(ov.queues || []);
      const series = ov.series || [];
      const col = (k) => series.map((p) => (p[k] == null ? null : Number(p[k])));
      const xs = col("t");
      if (charts[0]) charts[0].u.setData([xs, col("completed"), col("failed")]);
      if (charts[1]) charts[1].u.setData([xs, col("p50_ms"), col("p99_ms")]);
      const last = series[series.length - 1];
      const num = (x, d) => (x == null ? "—" : Number(x).toFixed(d));
      tput.summary.textContent = last ? `Now: ${num(last.completed, 1)} completed/s, ${num(last.failed, 1)} failed/s` : "No samples yet.";
      lat.summary.textContent = last ? `Now: p50 ${num(last.p50_ms, 1)} ms, p99 ${num(last.p99_ms, 1)} ms` : "No samples yet.";
      renderLimiters(limitersBody, ov.limiters || []);
      renderBreakers(breakersBody, ov.breakers || []);
      const p = ov.protective;
      protective.hidden = !p;
      if (p) {
        protective.textContent = `Protective mode: concurrency limited to ${p.limit} of ${p.base} while ` +
          `${plural(Number(p.open), "circuit breaker")} ${p.open === 1 ? "is" : "are"} open.`;
      }
    };
    if (state.overview) v.onOverview(state.overview);
    return v;
  }

  /** Queue rows are updated in place (keyed by queue name) so focus survives the 1 s updates. */
  function queueRows(tbody, admin) {
    const rows = new Map();
    const cols = QUEUE_STATES.length + (admin ? 3 : 2);
    tbody.append(emptyRow(cols, "Waiting for data…"));
    return (queues) => {
      const seen = new Set();
      for (const q of queues) {
        seen.add(q.queue);
        let r = rows.get(q.queue);
        if (!r) rows.set(q.queue, (r = makeQueueRow(q.queue, admin)));
        updateQueueRow(r, q);
      }
      for (const [name, r] of rows) if (!seen.has(name)) { r.tr.remove(); rows.delete(name); }
      const want = queues.map((q) => rows.get(q.queue).tr);
      if (!want.length) tbody.replaceChildren(emptyRow(cols, "No queues yet."));
      else if (want.length !== tbody.children.length || want.some((tr, i) => tbody.children[i] !== tr)) tbody.replaceChildren(...want);
    };
  }

  function makeQueueRow(name, admin) {
    const r = { name, links: {}, cells: {}, paused: undefined };
    r.badge = el("span", { class: "badge paused", "data-field": "paused", hidden: true }, "paused");
    r.age = el("td", { class: "num", "data-field": "oldest-pending" });
    r.tr = el("tr", { "data-queue": name }, el("th", { scope: "row" }, el("a", { href: jobsHash({ queue: name }) }, name), " ", r.badge));
    for (const s of QUEUE_STATES) {
      r.links[s] = el("a", { href: jobsHash({ queue: name, state: s }) }, "0");
      r.cells[s] = el("td", { class: `num count-${s}`, "data-state": s }, r.links[s]);
      r.tr.append(r.cells[s]);
    }
    r.tr.append(r.age);
    if (admin) r.tr.append((r.act = el("td", { class: "actions" })));
    return r;
  }

  function updateQueueRow(r, q) {
    for (const s of QUEUE_STATES) {
      const n = Number((q.counts || {})[s] || 0);
      const text = String(n);
      if (r.links[s].textContent !== text) r.links[s].textContent = text;
      r.cells[s].title = `${plural(n, `${s} job`)} in ${r.name}`;
      r.cells[s].classList.toggle("zero", n === 0);
    }
    const paused = Boolean(q.paused);
    r.badge.hidden = !paused;
    r.tr.classList.toggle("is-paused", paused);
    r.age.textContent = fmtDuration(q.oldest_pending_age_seconds);
    if (r.act && r.paused !== paused) {
      const hadFocus = r.act.contains(document.activeElement);
      const action = paused ? "resume-queue" : "pause-queue";
      const b = el("button", { type: "button", class: "btn small", "data-action": action, "data-queue": r.name,
        "aria-label": `${paused ? "Resume" : "Pause"} queue ${r.name}` }, paused ? "Resume" : "Pause");
      r.act.replaceChildren(b);
      if (hadFocus) b.focus();
    }
    r.paused = paused;
  }

  function chartFigure(id, caption, label) {
    const host = el("div", { class: "chart-host", id, role: "img", "aria-label": label });
    const summary = el("p", { class: "chart-summary muted" });
    return { host, summary, figure: el("figure", { class: "card chart" }, el("figcaption", {}, caption), host, summary) };
  }

  function cssVar(name) {
    return getComputedStyle(document.body).getPropertyValue(name).trim();
  }

  /** A uPlot line chart with a time x axis; `lines` = [[label, cssColourVar], ...]. */
  function makeChart(host, lines, unit) {
    if (typeof window.uPlot !== "function") {
      host.textContent = "Chart unavailable (uPlot did not load).";
      return null;
    }
    const height = 200;
    const axis = () => ({ stroke: cssVar("--muted"), grid: { stroke: cssVar("--grid"), width: 1 }, ticks: { stroke: cssVar("--grid"), width: 1 } });
    const fmt = (u, x) => (x == null ? "—" : `${x.toFixed(x < 10 ? 2 : 1)} ${unit}`);
    const u = new window.uPlot({
      width: Math.max(220, host.clientWidth), height,
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, (max || 0) * 1.15)] } },
      series: [
        { value: (u, t) => (t == null ? "—" : new Date(t * 1000).toLocaleTimeString()) },
        ...lines.map(([label, colour]) => ({ label, stroke: cssVar(colour), width: 2, value: fmt })),
      ],
      axes: [axis(), { ...axis(), size: 48 }],
      cursor: { drag: { x: false, y: false } },
    }, [[], ...lines.map(() => [])], host);
    const ro = new ResizeObserver(() => {
      const w = host.clientWidth;
      if (w && Math.abs(w - u.width) > 1) u.setSize({ width: w, height });
    });
    ro.observe(host);
    return { u, destroy() { ro.disconnect(); u.destroy(); } };
  }

  function renderLimiters(tbody, limiters) {
    if (!limiters.length) return tbody.replaceChildren(emptyRow(5, "No limiters."));
    tbody.replaceChildren(...limiters.map((l) => {
      const pct = l.limit > 0 ? Math.min(100, (100 * l.active) / l.limit) : 0;
      const fill = el("span", { class: "bar-fill" });
      fill.style.width = `${pct}%`;
      return el("tr", { "data-limiter": l.name, class: l.queued > 0 ? "has-queue" : null },
        el("th", { scope: "row" }, l.name),
        el("td", { class: "num", "data-field": "active" }, String(l.active)),
        el("td", { class: "num", "data-field": "queued" }, String(l.queued)),
        el("td", { class: "num", "data-field": "limit" }, String(l.limit)),
        el("td", { class: "bar-cell", title: `${Math.round(pct)}% in use` }, el("span", { class: "bar", "aria-hidden": "true" }, fill)));
    }));
  }

  function renderBreakers(tbody, breakers) {
    if (!breakers.length) return tbody.replaceChildren(emptyRow(3, "No breakers."));
    tbody.replaceChildren(...breakers.map((b) => el("tr", { "data-breaker": b.name, "data-breaker-state": b.state },
      el("th", { scope: "row" }, b.name),
      el("td", { "data-field": "state" }, el("span", { class: `badge breaker-${b.state}` }, String(b.state).replace(/_/g, " "))),
      el("td", { class: "num", "data-field": "since" }, fmtDuration(b.since_seconds)))));
  }

  // ---------------------------------------------------------------- 8. jobs
  function JobsView(main, r) {
    const v = baseView("jobs", "Jobs");
    v.refreshEvery = 2000;
    v.filters = pickFilters(r.params);
    state.lastJobsHash = jobsHash(v.filters);
    let cursors = []; // cursors of the pages before this one ("Previous" pops)
    let cursor = null;

    const summary = el("p", { id: "jobs-summary", class: "muted", "aria-live": "polite" }, "Loading…");
    const toolbar = el("div", { class: "toolbar" }, summary);
    const tbody = el("tbody");
    const prev = el("button", { type: "button", id: "prev-page", "data-page": "prev", class: "btn", disabled: true }, "← Previous");
    const next = el("button", { type: "button", id: "next-page", "data-page": "next", class: "btn", disabled: true }, "Next page →");
    const pageLabel = el("span", { id: "page-label", class: "muted" }, "Page 1");
    main.append(el("h2", {}, "Jobs"), jobFilterForm(v.filters), toolbar);
    v.message = (text) => { summary.textContent = text; };

    const go = (c) => { cursor = c; v.lastJson = ""; runRefresh(v); };
    prev.addEventListener("click", () => go(cursors.pop() ?? null));
    next.addEventListener("click", () => { cursors.push(cursor); go(next.dataset.cursor); });

    v.refresh = async () => {
      const [page, count] = await Promise.all([
        api("GET", `/v1/jobs${qs({ ...v.filters, cursor, limit: 50 })}`, undefined, v.signal),
        api("GET", `/v1/jobs/count${qs(v.filters)}`, undefined, v.signal).catch((e) => { if (e.name === "AbortError") throw e; return null; }),
      ]);
      const jobs = page.jobs || [];
      prev.disabled = cursors.length === 0;
      next.disabled = page.next == null;
      next.dataset.cursor = page.next == null ? "" : String(page.next);
      pageLabel.textContent = `Page ${cursors.length + 1}`;
      const n = Number(count?.count);
      summary.textContent = Number.isFinite(n)
        ? `${plural(n, "job")} ${n === 1 ? "matches" : "match"} this filter.`
        : `${plural(jobs.length, "job")} on this page.`;
      const admin = v.access === "admin";
      renderChanged(v, tbody, jobs, () => (jobs.length ? jobs.map((j) => jobRow(j, admin)) : emptyRow(admin ? 8 : 7, "No jobs match this filter.")));
    };

    (async () => {
      try { await ensureAccess(); } catch { /* the list call reports the error */ }
      if (v.signal.aborted) return;
      v.access = state.access;
      const admin = v.access === "admin";
      if (admin) {
        toolbar.append(el("div", { class: "bulk" },
          el("button", { type: "button", class: "btn", "data-action": "retry-filter" }, "Retry all matching"),
          el("button", { type: "button", class: "btn danger", "data-action": "cancel-filter" }, "Cancel all matching")));
      }
      main.append(
        wrap(el("table", { id: "jobs" },
          el("caption", { class: "sr-only" }, "Jobs matching the filter, newest first"),
          thead(["ID", "Queue", "Kind", "State", ["Attempt", "num"], "Last error", "Updated", admin && "Actions"]),
          tbody)),
        el("nav", { class: "pager", "aria-label": "Pages" }, prev, pageLabel, next));
      runRefresh(v);
    })();
    return v;
  }

  function jobFilterForm(f) {
    const field = (label, name, attrs = {}) =>
      el("label", {}, el("span", {}, label), el("input", { name, value: f[name] || "", autocomplete: "off", ...attrs }));
    const form = el("form", { id: "job-filters", class: "filters" },
      el("label", {}, el("span", {}, "State"), el("select", { name: "state" },
        el("option", { value: "" }, "any"),
        QUEUE_STATES.map((s) => el("option", { value: s, selected: f.state === s }, s)))),
      field("Queue", "queue", { list: "queue-names" }),
      field("Kind", "kind"),
      field("Error (exact)", "error"),
      field("Payload path", "path", { placeholder: "customer.id" }),
      field("Payload value", "value"),
      el("div", { class: "form-buttons" },
        el("button", { type: "submit", class: "btn primary" }, "Apply"),
        el("a", { href: "#/jobs", class: "btn link" }, "Clear")),
      el("datalist", { id: "queue-names" }, (state.overview?.queues || []).map((q) => el("option", { value: q.queue }))));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const data = new FormData(form);
      const filters = {};
      for (const k of FILTER_KEYS) filters[k] = String(data.get(k) || "").trim();
      navigate(jobsHash(filters));
    });
    return form;
  }

  function jobRow(j, admin) {
    return el("tr", { "data-job-id": j.id, "data-job-state": j.state },
      el("td", { "data-field": "id" }, el("a", { href: `#/jobs/${encodeURIComponent(j.id)}` }, `#${j.id}`)),
      el("td", { "data-field": "queue" }, j.queue),
      el("td", { "data-field": "kind" }, j.kind),
      el("td", { "data-field": "state" }, stateBadge(j.state)),
      el("td", { "data-field": "attempt", class: "num" }, `${j.attempt}/${j.max_attempts}`),
      el("td", { "data-field": "last_error", class: "error-cell", title: j.last_error || null }, j.last_error || ""),
      el("td", { "data-field": "updated_at" }, timeEl(j.updated_at)),
      admin && el("td", { class: "actions" }, jobButtons(j)));
  }

  function jobButtons(j) {
    return [
      JOB_RETRYABLE.has(j.state) && el("button", { type: "button", class: "btn small", "data-action": "retry-job",
        "data-job-id": j.id, "aria-label": `Retry job ${j.id}` }, "Retry"),
      JOB_CANCELLABLE.has(j.state) && el("button", { type: "button", class: "btn small danger", "data-action": "cancel-job",
        "data-job-id": j.id, "aria-label": `Cancel job ${j.id}` }, "Cancel"),
    ];
  }

  // ---------------------------------------------------------------- 9. job detail
  function JobDetailView(main, r) {
    const v = baseView("job", `Job #${r.id}`);
    v.refreshEvery = 2000;
    const body = el("div", { id: "job-detail" }, el("p", { class: "muted" }, "Loading…"));
    v.message = (text) => body.replaceChildren(el("p", { class: "muted" }, text));
    main.append(el("p", {}, el("a", { href: state.lastJobsHash, id: "back-link", class: "back" }, "← Back to jobs")), body);

    v.refresh = async () => {
      let job;
      try {
        job = await api("GET", `/v1/jobs/${encodeURIComponent(r.id)}`, undefined, v.signal);
      } catch (err) {
        if (err.status === 404) body.replaceChildren(el("h2", {}, `Job #${r.id}`), el("p", {}, "There is no such job."));
        throw err;
      }
      renderChanged(v, body, job, () => renderJob(job, v.access === "admin"));
    };
    (async () => {
      try { await ensureAccess(); } catch { /* the job call reports the error */ }
      if (v.signal.aborted) return;
      v.access = state.access;
      runRefresh(v);
    })();
    return v;
  }

  function renderJob(j, admin) {
    const when = (iso) => (iso ? el("time", { datetime: iso }, `${absolute(iso)} (${ago(iso)})`) : "—");
    const fields = [
      ["id", "ID", j.id], ["queue", "Queue", j.queue], ["kind", "Kind", j.kind], ["state", "State", stateBadge(j.state)],
      ["attempt", "Attempt", `${j.attempt} of ${j.max_attempts}`], ["priority", "Priority", j.priority],
      ["run_at", "Run at", when(j.run_at)], ["created_at", "Created", when(j.created_at)],
      ["updated_at", "Updated", when(j.updated_at)], ["finished_at", "Finished", when(j.finished_at)],
      ["lease_expires_at", "Lease expires", when(j.lease_expires_at)],
      ["cancel_requested", "Cancel requested", j.cancel_requested ? "yes" : "no"],
      ["idempotency_key", "Idempotency key", j.idempotency_key ?? "—"], ["ordering_key", "Ordering key", j.ordering_key ?? "—"],
    ];
    const attempts = Array.isArray(j.metadata?.attempts) ? j.metadata.attempts : null;
    return [
      el("h2", {}, `Job #${j.id} `, stateBadge(j.state)),
      admin && el("div", { class: "toolbar" }, jobButtons(j)),
      el("dl", { id: "job-fields", class: "fields", "data-job-id": j.id },
        fields.map(([key, label, value]) => [el("dt", {}, label), el("dd", { "data-field": key }, value)])),
      j.last_error != null && [el("h3", {}, "Last error"), el("pre", { id: "job-last-error", class: "json error-text" }, j.last_error)],
      el("h3", {}, "Payload"), jsonBlock("job-payload", j.payload),
      el("h3", {}, "Result"), jsonBlock("job-result", j.result),
      attempts && [el("h3", {}, "Delivery attempts"), attemptsTable(attempts)],
      el("h3", {}, "Metadata"), jsonBlock("job-metadata", j.metadata),
    ];
  }

  function attemptsTable(attempts) {
    return wrap(el("table", { id: "attempts" },
      thead([["#", "num"], "At", ["Status", "num"], ["Duration", "num"], "Error", "Response body"]),
      el("tbody", {}, attempts.map((a) => el("tr", { "data-attempt": a.attempt },
        el("td", { class: "num" }, String(a.attempt)),
        el("td", {}, timeEl(a.at)),
        el("td", { class: `num${a.status >= 200 && a.status < 300 ? " ok-text" : " bad-text"}`, "data-field": "status" }, a.status == null ? "—" : String(a.status)),
        el("td", { class: "num" }, a.duration_ms == null ? "—" : `${a.duration_ms} ms`),
        el("td", { class: "error-cell", title: a.error || null }, a.error || "—"),
        el("td", {}, a.body == null ? "—" : el("details", {}, el("summary", {}, `${a.body.length} chars`), el("pre", { class: "json" }, a.body))))))));
  }

  // ---------------------------------------------------------------- 10. failures
  function FailuresView(main, r) {
    const v = baseView("failures", "Failures");
    v.refreshEvery = 5000;
    const f = { queue: r.params.get("queue") || "", kind: r.params.get("kind") || "" };
    const tbody = el("tbody", {}, emptyRow(6, "Loading…"));
    v.message = (text) => tbody.replaceChildren(emptyRow(6, text));
    const form = el("form", { id: "failure-filters", class: "filters" },
      el("label", {}, el("span", {}, "Queue"), el("input", { name: "queue", value: f.queue, autocomplete: "off" })),
      el("label", {}, el("span", {}, "Kind"), el("input", { name: "kind", value: f.kind, autocomplete: "off" })),
      el("div", { class: "form-buttons" }, el("button", { type: "submit", class: "btn primary" }, "Apply"),
        el("a", { href: "#/failures", class: "btn link" }, "Clear")));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const d = new FormData(form);
      navigate(`#/failures${qs({ queue: String(d.get("queue")).trim(), kind: String(d.get("kind")).trim() })}`);
    });
    main.append(el("h2", {}, "Failures"),
      el("p", { class: "muted" }, "Failed and dead jobs, grouped by kind and last error, biggest first."),
      form,
      wrap(el("table", { id: "failures" },
        thead(["Kind", "Queue", "Error", ["Count", "num"], "First seen", "Last seen"]),
        tbody)));

    v.refresh = async () => {
      const res = await api("GET", `/v1/failures${qs(f)}`, undefined, v.signal);
      const groups = res.groups || [];
      renderChanged(v, tbody, groups, () => (groups.length ? groups.map((g, i) => {
        const href = jobsHash({ state: "dead", queue: g.queue, kind: g.kind, error: g.error });
        return el("tr", { "data-error-group": i, "data-queue": g.queue, "data-kind": g.kind },
          el("td", { "data-field": "kind" }, g.kind),
          el("td", { "data-field": "queue" }, g.queue),
          el("td", { "data-field": "error", class: "error-cell wide" }, el("a", { href, title: g.error }, g.error || "(no error text)")),
          el("td", { "data-field": "count", class: "num" }, el("a", { href, "aria-label": `${plural(g.count, "job")}, show dead jobs` }, String(g.count))),
          el("td", { "data-field": "first_seen" }, timeEl(g.first_seen)),
          el("td", { "data-field": "last_seen" }, timeEl(g.last_seen)));
      }) : emptyRow(6, "No failed or dead jobs.")));
    };
    runRefresh(v);
    return v;
  }

  // ---------------------------------------------------------------- 11. actions
  /** Set the hash; re-route even when it is unchanged (e.g. "Apply" with the same filters). */
  function navigate(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  }

  async function countActionable(filters, states) {
    const count = async (f) => (await api("GET", `/v1/jobs/count${qs(f)}`)).count;
    if (filters.state) return states.includes(filters.state) ? count(filters) : 0;
    const counts = await Promise.all(states.map((s) => count({ ...filters, state: s })));
    return counts.reduce((a, b) => a + b, 0);
  }

  async function bulkAction(action, filters) {
    const retry = action === "retry-filter";
    const states = retry ? RETRYABLE : CANCELLABLE;
    const n = await countActionable(filters, states);
    const what = filters.state ? `${filters.state} ` : "";
    const scope = filters.state ? "" : ` (${states.join(", ")})`;
    if (n === 0) {
      window.alert(`No ${what}jobs matching this filter can be ${retry ? "retried" : "cancelled"}. Nothing was done.`);
      return false;
    }
    if (!window.confirm(`${retry ? "Retry" : "Cancel"} ${nf.format(n)} ${what}${n === 1 ? "job" : "jobs"}${scope} matching this filter?`)) return false;
    const res = await api("POST", retry ? "/v1/jobs/retry" : "/v1/jobs/cancel", { ...filters });
    notice(`${retry ? "Retried" : "Cancelled"} ${plural(Number(res?.affected ?? 0), "job")}.`);
    return true;
  }

  async function runAction(button) {
    const action = button.dataset.action;
    const id = button.dataset.jobId;
    const queue = button.dataset.queue;
    let done = false;
    button.disabled = true;
    try {
      if (action === "pause-queue" || action === "resume-queue") {
        const verb = action === "pause-queue" ? "pause" : "resume";
        await api("POST", `/v1/queues/${encodeURIComponent(queue)}/${verb}`);
        notice(`Queue ${queue} ${verb}d.`);
        done = true;
      } else if (action === "retry-job") {
        await api("POST", `/v1/jobs/${encodeURIComponent(id)}/retry`);
        notice(`Job #${id} will be retried.`);
        done = true;
      } else if (action === "cancel-job") {
        if (!window.confirm(`Cancel job #${id}?`)) return;
        await api("POST", `/v1/jobs/${encodeURIComponent(id)}/cancel`);
        notice(`Job #${id} cancelled.`);
        done = true;
      } else if (action === "retry-filter" || action === "cancel-filter") {
        done = await bulkAction(action, (current && current.filters) || {});
      }
    } catch (err) {
      report(err, true);
    } finally {
      button.disabled = false;
    }
    if (done && current) runRefresh(current);
  }

  // ---------------------------------------------------------------- 12. start-up
  function start() {
    state.token = sessionStorage.getItem(TOKEN_KEY) || "";
    $("#token-form").addEventListener("submit", onTokenSubmit);
    $("#error-dismiss").addEventListener("click", () => { $("#error").hidden = true; });
    document.addEventListener("click", (e) => {
      const b = e.target.closest && e.target.closest("button[data-action]");
      if (b && !b.disabled) { e.preventDefault(); runAction(b); }
    });
    window.addEventListener("hashchange", () => {
      route();
      $("#view").focus({ preventScroll: true }); // screen readers start at the new content
    });
    document.addEventListener("visibilitychange", onVisibility);
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
      if (current && current.name === "overview") route(); // charts read their colours once
    });
    if (!location.hash || location.hash === "#" || location.hash === "#/") history.replaceState(null, "", "#/overview");
    route();
    connect();
    setInterval(watchdog, 5000);
  }

  start();
})();

// The overview view: per-queue job counts (updated in place), throughput and latency charts
// (uPlot, the global from /assets/vendor/uPlot.iife.min.js), concurrency limiters and circuit
// breakers, all from the live overview.
import { QUEUE_STATES, state } from "./state.js";
import { el, emptyRow, thead, wrap } from "./dom.js";
import { fmtDuration, jobsHash, plural } from "./format.js";
import { api } from "./api.js";
import { applyOverview, baseView } from "./router.js";

export function OverviewView(main) {
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

// The jobs view: the filter form, one page of jobs (cursor paging) with their count, the bulk
// retry/cancel buttons, and the per-job action buttons the job detail view shares.
import { QUEUE_STATES, state } from "./state.js";
import { el, emptyRow, renderChanged, stateBadge, thead, timeEl, wrap } from "./dom.js";
import { jobsHash, plural, qs } from "./format.js";
import { api } from "./api.js";
import { baseView, ensureAccess, navigate, runRefresh } from "./router.js";

const FILTER_KEYS = ["state", "queue", "kind", "error", "path", "value"];
const JOB_RETRYABLE = new Set(["dead", "cancelled"]);
const JOB_CANCELLABLE = new Set(["pending", "scheduled", "running", "failed_will_retry"]);

function pickFilters(params) {
  const f = {};
  for (const k of FILTER_KEYS) {
    const v = params.get(k);
    if (v) f[k] = v;
  }
  return f;
}

export function JobsView(main, r) {
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

export function jobButtons(j) {
  return [
    JOB_RETRYABLE.has(j.state) && el("button", { type: "button", class: "btn small", "data-action": "retry-job",
      "data-job-id": j.id, "aria-label": `Retry job ${j.id}` }, "Retry"),
    JOB_CANCELLABLE.has(j.state) && el("button", { type: "button", class: "btn small danger", "data-action": "cancel-job",
      "data-job-id": j.id, "aria-label": `Cancel job ${j.id}` }, "Cancel"),
  ];
}

// The job detail view: one job's fields, last error, payload, result, delivery attempts and
// metadata, with its retry/cancel buttons for an admin token.
import { state } from "./state.js";
import { el, jsonBlock, renderChanged, stateBadge, thead, timeEl, wrap } from "./dom.js";
import { absolute, ago } from "./format.js";
import { api } from "./api.js";
import { baseView, ensureAccess, runRefresh } from "./router.js";
import { jobButtons } from "./jobs.js";

export function JobDetailView(main, r) {
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

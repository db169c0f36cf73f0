// The failures view: failed and dead jobs grouped by kind and last error, filtered by queue and
// kind, each group linking to its dead jobs.
import { el, emptyRow, renderChanged, thead, timeEl, wrap } from "./dom.js";
import { jobsHash, plural, qs } from "./format.js";
import { api } from "./api.js";
import { baseView, navigate, runRefresh } from "./router.js";

export function FailuresView(main, r) {
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

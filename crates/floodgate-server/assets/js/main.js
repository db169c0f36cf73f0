// floodgate live dashboard, entry point. Native ES modules, no build step, no framework: this
// module wires the page (token form, error banner, action buttons, hash routing, tab
// visibility, colour scheme), names the views the router mounts, and starts the live stream.
import { $ } from "./dom.js";
import { loadToken, watchTokenForm } from "./api.js";
import { connect, onVisibility, watchdog } from "./events.js";
import { current, route, setViews } from "./router.js";
import { runAction } from "./actions.js";
import { OverviewView } from "./overview.js";
import { JobsView } from "./jobs.js";
import { JobDetailView } from "./job.js";
import { FailuresView } from "./failures.js";

setViews({ overview: OverviewView, jobs: JobsView, job: JobDetailView, failures: FailuresView });

function start() {
  loadToken();
  watchTokenForm(() => {
    connect();
    route();
  });
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

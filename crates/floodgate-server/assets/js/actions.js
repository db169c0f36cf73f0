// Actions behind the buttons with data-action: pause/resume a queue, retry/cancel a job, and
// retry/cancel every job matching the jobs view's filter (after counting and confirming).
import { nf, plural, qs } from "./format.js";
import { api, notice, report } from "./api.js";
import { current, runRefresh } from "./router.js";

const RETRYABLE = ["dead", "cancelled"]; // filter states a bulk retry acts on
const CANCELLABLE = ["pending", "running", "failed"]; // filter states a bulk cancel acts on

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

export async function runAction(button) {
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

// Shared state of the dashboard: the job states a queue is counted by, and what the server
// has told us so far (token, access level, latest overview, clock skew) that the views share.

export const QUEUE_STATES = ["pending", "running", "succeeded", "failed", "dead", "cancelled"];

export const state = {
  token: "",
  access: null, // "admin" | "read" | null (not known yet)
  overview: null, // latest Overview
  skewMs: 0, // server clock minus ours, from Overview.at
  lastJobsHash: "#/jobs", // where "back" goes from a job
  accessPromise: null,
};

// @ts-check
/**
 * RFC 9457 problem documents (`application/problem+json`) for the service's error answers,
 * shaped like floodgate's own: `type`, `title`, `status`, `detail`, and a stable `code` to
 * branch on (plus `errors`, one per bad field, for a validation failure).
 *
 * @module
 */

/**
 * One field that failed validation.
 *
 * @typedef {{ field: string, message: string }} FieldError
 */

/**
 * A problem document.
 *
 * @typedef {{
 *   type: string,
 *   title: string,
 *   status: number,
 *   detail: string,
 *   code: string,
 *   errors?: FieldError[],
 * }} Problem
 */

/** The title of each status the service answers with a problem. */
const TITLES = /** @type {Record<number, string>} */ ({
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  500: "Internal Server Error",
  503: "Service Unavailable",
});

/**
 * A problem document. `type` is `about:blank`: the status says what kind of problem it is,
 * `code` which one exactly.
 *
 * @param {number} status the HTTP status
 * @param {string} code a stable code, e.g. `VALIDATION_FAILED`
 * @param {string} detail what went wrong in this request, and what to do about it
 * @param {FieldError[]} [errors] the fields that failed validation
 * @returns {Problem}
 */
export function problem(status, code, detail, errors) {
  /** @type {Problem} */
  const doc = { type: "about:blank", title: TITLES[status] ?? "Error", status, detail, code };
  if (errors !== undefined) doc.errors = errors;
  return doc;
}

/**
 * Sends `doc` as the answer, with its status and `Content-Type: application/problem+json`.
 *
 * @param {import("node:http").ServerResponse} res
 * @param {Problem} doc
 * @param {Record<string, string>} [headers] more headers (`Allow` for a 405, say)
 */
export function sendProblem(res, doc, headers = {}) {
  const body = JSON.stringify(doc);
  res.writeHead(doc.status, {
    ...headers,
    "content-type": "application/problem+json",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

// DOM helpers: building elements, table parts, times and badges, and re-rendering that keeps
// focus. Server strings reach the DOM only as text nodes, textContent or setAttribute values;
// innerHTML is never used.
import { absolute, ago } from "./format.js";

export const $ = (sel, root = document) => root.querySelector(sel);

/** el("a", {href: "#/x", class: "c"}, "text", child, [more]) — attrs via setAttribute, text as text nodes. */
export function el(tag, attrs, ...children) {
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

export const wrap = (table) => el("div", { class: "table-wrap" }, table);
/** <thead> from column specs: "Label" or ["Label", "class"]; falsy specs are skipped. */
export const thead = (cols) => el("thead", {}, el("tr", {}, cols.filter(Boolean).map((c) =>
  el("th", { scope: "col", class: Array.isArray(c) ? c[1] : null }, Array.isArray(c) ? c[0] : c))));
export const emptyRow = (cols, text) => el("tr", {}, el("td", { colspan: cols, class: "muted" }, text));

/** A <time> with relative text and the absolute time as title, or "—". */
export const timeEl = (iso) => (iso ? el("time", { datetime: iso, title: absolute(iso) }, ago(iso)) : "—");
export const jsonBlock = (id, value) => el("pre", { id, class: "json" }, JSON.stringify(value ?? null, null, 2));
export const stateBadge = (s) => el("span", { class: `badge state-${s}` }, s);

/**
 * Replace `container`'s children with build() unless `data` is unchanged since the view's last
 * render, then put focus back on the equivalent link/button (live refreshes must not steal focus).
 */
export function renderChanged(v, container, data, build) {
  const json = JSON.stringify(data);
  if (json === v.lastJson) return;
  v.lastJson = json;
  const key = (n) => [n.tagName, n.dataset.action, n.dataset.jobId, n.dataset.queue, n.getAttribute("href")].join("|");
  const a = document.activeElement;
  const k = a && a !== document.body && container.contains(a) ? key(a) : null;
  container.replaceChildren(...[build()].flat(Infinity).filter(Boolean));
  if (k) for (const n of container.querySelectorAll("a, button")) if (key(n) === k) return n.focus();
}

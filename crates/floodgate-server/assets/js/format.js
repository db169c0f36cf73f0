// Text formatting helpers: numbers, plurals, durations, times (relative to the server's
// clock) and the query strings of API paths and #/jobs links.
import { state } from "./state.js";

export const nf = new Intl.NumberFormat();
export const plural = (n, word) => `${nf.format(n)} ${word}${n === 1 ? "" : "s"}`;
const now = () => Date.now() + state.skewMs;

export function fmtDuration(sec) {
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

export function absolute(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

export function ago(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "—";
  const s = (now() - t) / 1000;
  return s >= 0 ? `${fmtDuration(s)} ago` : `in ${fmtDuration(-s)}`;
}

export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== "") p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : "";
}

export const jobsHash = (filters) => `#/jobs${qs(filters)}`;

// Shared helpers of the UI pages: API calls, DOM building, formatting, the server badge.
// Plain ES modules, no build step; everything is served by this server.

export const config = {
  maxBatchSize: Number(document.body.dataset.maxBatchSize || 1000),
  // "token": admin routes need the Bearer token; "dev": open to this machine without one;
  // "closed": the server has no admin token, so retrain, promote and rollback are refused.
  admin: document.body.dataset.admin || "token",
  // The same for reading recorded predictions (patient data): the read or the admin token.
  read: document.body.dataset.read || "token",
};

/** Call the API; never throws for HTTP errors: returns {ok, status, data, headers}. */
export async function api(path, { method = "GET", json, form, token, signal } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal });
  } catch (err) {
    return { ok: false, status: 0, data: { message: "the server cannot be reached" }, headers: new Headers() };
  }
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try { data = await response.json(); } catch { data = null; }
  } else {
    data = { message: (await response.text()).slice(0, 300) };
  }
  return { ok: response.ok, status: response.status, data, headers: response.headers };
}

/**
 * The message of an error answer (our one error shape). It is written for people and already
 * says what the field takes and what was sent ("Age must be a whole number from 0 to 120 (got
 * 150)"); `expected` is the same in words for programs, so it is not repeated here.
 */
export function errorText(result) {
  const d = result.data || {};
  if (result.status === 0) return "The server cannot be reached.";
  return d.message || d.detail || `HTTP ${result.status}`;
}

/** Build an element: el("a", {href: "/", class: "x"}, "text", child). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

export function clear(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

export const pct = (x, digits = 1) =>
  x === null || x === undefined || Number.isNaN(Number(x)) ? "–" : `${(Number(x) * 100).toFixed(digits)}%`;
export const num = (x, digits = 3) =>
  x === null || x === undefined || Number.isNaN(Number(x)) ? "–" : Number(x).toFixed(digits);

export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

/** A notice saying a feature of the API is not on this server (its route answered 404). */
export function unavailable(feature, doc) {
  return el("p", { class: "notice", "data-unavailable": feature },
    `${feature} is not available on this server (its API answered 404).`,
    doc ? el("span", {}, " See ", el("a", { href: doc }, doc), ".") : null);
}

/** One bar per class probability; the predicted class is highlighted. */
export function probabilityBars(probabilities, predicted) {
  const rows = Object.entries(probabilities).map(([label, p]) =>
    el("div", { class: `barrow${label === predicted ? " best" : ""}`, "data-class": label },
      el("span", {}, label),
      el("span", { class: "track", role: "meter", "aria-label": `${label} probability`,
        "aria-valuemin": "0", "aria-valuemax": "1", "aria-valuenow": String(p) },
        fill(p)),
      el("span", { class: "val" }, pct(p))));
  return el("div", { class: "bars" }, rows);
}

function fill(p) {
  const node = el("span", { class: "fill" });
  node.style.width = `${Math.max(0, Math.min(1, Number(p))) * 100}%`;
  return node;
}

/** Fill the header badge from /health; returns the health answer (or null). */
export async function refreshStatus() {
  const badge = $("#server-status");
  const result = await api("/health");
  if (!badge) return result.ok ? result.data : null;
  if (result.ok && result.data.model_loaded) {
    badge.className = "status ok";
    badge.textContent = `healthy · model ${result.data.model_version}`;
    return result.data;
  }
  badge.className = "status bad";
  badge.textContent = result.ok ? "no model loaded" : "server unreachable";
  return result.ok ? result.data : null;
}

/** The feature contract, as served by GET /model/info (never copied into the pages). */
export async function modelInfo() {
  return api("/model/info");
}

export function downloadText(filename, text, type = "text/csv") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = el("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Mark a page as done loading (tests wait for it). */
export function ready(name = "ready") {
  document.body.dataset[name] = "true";
}

refreshStatus();

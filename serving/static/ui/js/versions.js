// The Monitoring page's "Versions side by side": accuracy over time per version and role from
// GET /monitoring/versions (ground truth sent with POST /feedback), and the traffic policy
// (GET /routing, an admin route: shown with the admin token this tab holds).
import { $, api, clear, config, el, errorText, num, pct } from "./app.js";
import { bindToken, storedToken, token } from "./admin.js";
import { legend, lineChart } from "./charts.js";

const CLASSES_OF_ROLE = { primary: "", candidate: "alt", shadow: "s2" };
// The window select's hours -> a bucket width that gives about 12 to 30 points.
const BUCKETS = { 1: 300, 24: 3600, 168: 6 * 3600, 720: 86400 };

function hours() {
  const select = $("#window");
  return select ? Number(select.value) : 24;
}

export function policyText(reply) {
  const p = reply.policy;
  if (!p) return `No traffic policy: ${reply.served_version ?? "the served version"} answers every request.`;
  const parts = [`Policy ${reply.policy_id}: primary ${p.primary}`];
  if (p.candidates.length) parts.push(`candidates ${p.candidates.map((c) => `${c.version} (${pct(c.weight, 0)})`).join(", ")}`);
  if (p.shadow.length) parts.push(`shadows ${p.shadow.map((s) => `${s.version} (${pct(s.fraction, 0)})`).join(", ")}`);
  parts.push(p.sticky_key ? `sticky by ${p.sticky_key}` : "drawn at random");
  return `${parts.join("; ")}.${reply.applied ? "" : " (This worker does not follow it yet.)"}`;
}

/** Why GET /routing was refused (401/403), in words; null for any other answer. */
export function policyLocked(result) {
  if (result.status !== 401 && result.status !== 403) return null;
  if (config.admin === "closed") {
    return "The traffic policy is shown with the admin token only, and this server has none (set DRUGCLF_ADMIN_TOKEN).";
  }
  if (result.status === 401) {
    return "Reading the traffic policy needs the admin token: enter it below (it is kept in this tab only, for every page).";
  }
  return `Reading the traffic policy needs the admin token: ${errorText(result)}.`;
}

async function showPolicy() {
  const reply = await api("/routing", { token: storedToken() });
  const locked = policyLocked(reply);
  const line = $("#ab-policy");
  line.textContent = reply.ok ? policyText(reply.data) : locked || errorText(reply);
  line.classList.toggle("locked", Boolean(locked));
  // A token can help only where the server has one (not "closed"; "dev" answers without one).
  $("#ab-token-form").hidden = !locked || config.admin === "closed";
}

function bucketLabel(start, width) {
  const iso = new Date(start * 1000).toISOString();
  return width >= 86400 ? iso.slice(5, 10) : iso.slice(11, 16);
}

function render(report) {
  const rows = report.versions;
  const width = report.bucket_seconds;
  const labels = (rows[0]?.accuracy_over_time || []).map((b) => bucketLabel(b.start, width));
  const plotted = rows.filter((r) => r.labelled > 0);
  let shadowIndex = 0;
  const series = plotted.map((r) => ({
    name: `${r.model_version} (${r.role})`,
    values: r.accuracy_over_time.map((b) => b.accuracy),
    cls: r.role === "shadow" ? (shadowIndex++ ? "s3" : "s2") : CLASSES_OF_ROLE[r.role] ?? "s3",
  }));
  if (series.length) {
    lineChart($("#ab-chart"), { labels, series, label: "Accuracy over time per version (UTC)",
      format: (v) => pct(v, 0), min: 0, max: 1 });
    clear($("#ab-legend"), legend(series));
  } else {
    clear($("#ab-chart"), el("p", { class: "muted", id: "ab-no-labels" },
      "No labelled predictions in this window: send ground truth with POST /feedback (or the Batch page)."));
    clear($("#ab-legend"));
  }
  const head = ["Version", "Role", "Predictions", "Labelled", "Accuracy", "Macro F1", "Agrees with primary", "p50 ms", "p99 ms"];
  clear($("#ab-table"),
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i > 1 ? "num" : "" }, h)))),
    el("tbody", {}, rows.length ? rows.map((r) => el("tr", { "data-version": r.model_version, "data-role": r.role },
      el("td", {}, el("code", {}, r.model_version)),
      el("td", {}, el("span", { class: r.role === "primary" ? "tag ok" : "tag" }, r.role)),
      el("td", { class: "num" }, r.predictions),
      el("td", { class: "num" }, r.labelled),
      el("td", { class: "num", "data-cell": "accuracy" }, r.enough_labels ? pct(r.accuracy) : el("span", { class: "muted", title: r.note }, r.note)),
      el("td", { class: "num" }, r.enough_labels ? num(r.macro_f1, 3) : "–"),
      el("td", { class: "num" }, r.agreement && r.agreement.rate !== null ? `${pct(r.agreement.rate)} of ${r.agreement.compared}` : "–"),
      el("td", { class: "num" }, r.latency_ms.p50 === null ? "–" : num(r.latency_ms.p50, 2)),
      el("td", { class: "num" }, r.latency_ms.p99 === null ? "–" : num(r.latency_ms.p99, 2)))) : [
      el("tr", {}, el("td", { colspan: head.length, class: "muted" }, "No predictions in this window."))]));
}

async function refresh() {
  const h = hours();
  const since = new Date(Date.now() - h * 3600 * 1000).toISOString();
  const query = new URLSearchParams({ since, bucket_seconds: String(BUCKETS[h] || 3600) });
  const [, report] = await Promise.all([showPolicy(), api(`/monitoring/versions?${query}`)]);
  if (report.status === 404) { $("#ab-card").hidden = true; return; } // the prediction log is off
  if (!report.ok) { clear($("#ab-table"), el("caption", {}, errorText(report))); return; }
  render(report.data);
}

async function main() {
  const form = $("#window-form");
  if (form) form.addEventListener("submit", () => refresh());
  bindToken($("#ab-token"));
  $("#ab-token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    token($("#ab-token"));
    showPolicy();
  });
  await refresh();
  document.body.dataset.versionsReady = "true";
}
if ($("#ab-card")) main();

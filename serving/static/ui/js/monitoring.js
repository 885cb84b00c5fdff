import { $, api, clear, config, el, errorText, num, pct, ready, unavailable, when } from "./app.js";
import { barChart } from "./charts.js";
import { bindToken, token } from "./admin.js";

const PAGE = 25;
let classes = [];
let cursor = null;

function sinceParam() {
  const hours = Number($("#window").value);
  return new Date(Date.now() - hours * 3600 * 1000).toISOString();
}

/** 404 from these routes: the route is missing, or the prediction log is turned off. */
function showMissing(result) {
  $("#monitoring-body").hidden = true;
  const off = result.data && result.data.code === "prediction_log_off";
  clear($("#monitoring-unavailable"), off
    ? el("p", { class: "notice", "data-unavailable": "prediction log" },
      "The prediction log is turned off on this server (DRUGCLF_PREDICTION_LOG=false), so there is nothing to show.")
    : unavailable("Monitoring", null));
}

function renderSummary(s) {
  $("#window-text").textContent = `${when(s.since)} – ${when(s.until)}`;
  $("#total-predictions").textContent = s.predictions;
  $("#total-requests").textContent = s.requests;
  const hours = s.per_hour;
  if (hours.length) {
    barChart($("#hourly-chart"), {
      labels: hours.map((h) => h.hour.slice(11, 16) || h.hour),
      values: hours.map((h) => h.predictions), label: "Predictions per hour", format: (v) => String(v),
    });
  } else clear($("#hourly-chart"), el("p", { class: "muted" }, "No predictions in this window."));

  const totals = Object.fromEntries(classes.map((c) => [c, 0]));
  for (const mix of s.class_mix) for (const [c, n] of Object.entries(mix.counts)) totals[c] = (totals[c] || 0) + n;
  const all = Object.values(totals).reduce((a, b) => a + b, 0);
  if (all) {
    barChart($("#mix-chart"), { labels: Object.keys(totals), values: Object.values(totals),
      label: "Predictions per class", format: (v) => String(v) });
  } else clear($("#mix-chart"));
  clear($("#mix-table"),
    el("thead", {}, el("tr", {}, el("th", {}, "Model version"), el("th", { class: "num" }, "n"),
      classes.map((c) => el("th", { class: "num" }, c)))),
    el("tbody", {}, s.class_mix.map((m) => el("tr", {}, el("td", {}, el("code", {}, m.model_version)),
      el("td", { class: "num" }, m.predictions), classes.map((c) => el("td", { class: "num" }, pct(m.shares[c] ?? 0, 0)))))));

  const lat = s.latency_ms;
  const keys = ["p50", "p90", "p95", "p99", "max"];
  if (lat.requests) {
    barChart($("#latency-chart"), { labels: keys, values: keys.map((k) => lat[k] ?? 0),
      label: "Latency percentiles in milliseconds", format: (v) => num(v, 2) });
  } else clear($("#latency-chart"), el("p", { class: "muted" }, "No requests in this window."));

  const drift = s.drift;
  const status = $("#drift-status");
  if (!drift) {
    status.className = "notice"; status.textContent = "No model version to compare with.";
    clear($("#drift-chart")); clear($("#drift-table"));
    return;
  }
  $("#drift-hint").textContent = `(PSI vs training data of ${drift.model_version})`;
  const enough = drift.rows >= drift.min_rows;
  status.className = drift.drifted ? "notice bad" : "notice";
  status.textContent = drift.drifted
    ? `Drift: at least one feature's PSI is above ${drift.threshold} over ${drift.rows} rows.`
    : enough ? `No drift over ${drift.rows} rows (threshold PSI ${drift.threshold}).`
      : `${drift.rows} live rows so far; drift is flagged once ${drift.min_rows} exist (threshold PSI ${drift.threshold}).`;
  const features = drift.features;
  barChart($("#drift-chart"), {
    labels: features.map((f) => f.name), values: features.map((f) => f.psi ?? 0), label: "PSI per feature",
    format: (v) => num(v, 2), max: Math.max(drift.threshold * 1.5, ...features.map((f) => f.psi ?? 0)),
    // Colours only mean something once enough rows exist; before that every bar is grey.
    classOf: (v) => (!enough ? "muted" : v > drift.threshold ? "alert" : v > drift.threshold / 2 ? "warn" : ""),
  });
  clear($("#drift-table"),
    el("thead", {}, el("tr", {}, ["Feature", "PSI", "Drift", "Live vs training by bin"].map((h) => el("th", {}, h)))),
    el("tbody", {}, features.map((f) => el("tr", {}, el("td", {}, f.name), el("td", { class: "num" }, f.psi === null ? "–" : num(f.psi, 3)),
      el("td", {}, el("span", { class: f.drift ? "tag bad" : "tag" }, f.drift ? "yes" : "no")),
      el("td", { class: "small" }, f.bins.map((b, i) => `${b}: ${pct(f.live[i], 0)} / ${pct(f.training[i], 0)}`).join(" · "))))));
}

function recentRow(r) {
  const i = r.inputs;
  return el("tr", { "data-id": r.id },
    el("td", {}, when(r.time)),
    el("td", {}, el("strong", {}, r.prediction)),
    el("td", { class: "num" }, r.probabilities ? pct(r.probabilities[r.prediction]) : "–"),
    el("td", {}, i ? `${i.Age}, ${i.Sex}, ${i.BP}, ${i.Cholesterol}, ${i.Na_to_K}` : "not recorded"),
    el("td", { class: "num" }, r.batch_size > 1 ? `${r.batch_index + 1} of ${r.batch_size}` : "single"),
    el("td", { class: "num" }, num(r.latency_ms, 2)),
    el("td", {}, el("code", {}, r.model_version)));
}

async function loadRecent(more = false) {
  const query = new URLSearchParams({ limit: String(PAGE) });
  const cls = $("#class-filter").value;
  if (cls) query.set("prediction", cls);
  if (more && cursor) query.set("before_id", String(cursor));
  const page = await api(`/predictions?${query}`, { token: token($("#token")) });
  if (page.status === 404) { showMissing(page); return false; }
  if (page.status === 401 || page.status === 403) {
    // Patient inputs are behind a token; the summary above is not.
    const text = config.read === "closed"
      ? "Recent predictions hold patient data and this server has no token to guard them (set DRUGCLF_READ_TOKEN)."
      : page.status === 401 ? "Recent predictions hold patient data: enter the read or admin token and press Filter."
        : `Not allowed: ${errorText(page)}`;
    clear($("#recent"), el("caption", { id: "recent-locked" }, text));
    $("#more-button").hidden = true;
    return true;
  }
  if (!page.ok) { clear($("#recent"), el("caption", {}, errorText(page))); return true; }
  if (!more) {
    clear($("#recent"), el("thead", {}, el("tr", {},
      ["Time", "Prediction", "Prob.", "Age, Sex, BP, Cholesterol, Na_to_K", "Batch", "ms", "Model"].map((h) => el("th", {}, h)))),
      el("tbody", {}));
  }
  const body = $("#recent tbody");
  body.append(...page.data.items.map(recentRow));
  if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No predictions yet.")));
  cursor = page.data.next_cursor;
  $("#more-button").hidden = cursor === null || page.data.items.length < PAGE;
  return true;
}

async function refresh() {
  const button = $("#refresh-button");
  button.disabled = true;
  try {
    const summary = await api(`/monitoring/summary?${new URLSearchParams({ since: sinceParam() })}`);
    if (summary.status === 404 && summary.data && summary.data.code !== "version_not_found") { showMissing(summary); return; }
    if (summary.ok) renderSummary(summary.data);
    else $("#window-text").textContent = errorText(summary);
    await loadRecent(false);
  } finally {
    button.disabled = false;
  }
}

async function main() {
  const info = await api("/model/info");
  // The classes come from the served model only: no copy of the contract lives in the page.
  classes = info.ok ? info.data.classes : [];
  $("#class-filter").append(...classes.map((c) => el("option", { value: c }, c)));
  $("#read-token-field").hidden = config.read !== "token";
  bindToken($("#token"));
  $("#window-form").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
  $("#filter-form").addEventListener("submit", (e) => { e.preventDefault(); loadRecent(false); });
  $("#more-button").addEventListener("click", () => loadRecent(true));
  await refresh();
  ready();
}
main();

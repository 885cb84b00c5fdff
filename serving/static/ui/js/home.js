import { $, api, num, pct, refreshStatus, ready, when } from "./app.js";

async function main() {
  const health = await refreshStatus();
  $("#health").textContent = health ? (health.model_loaded ? "healthy, model loaded" : "up, no model loaded") : "unreachable";
  const info = await api("/model/info");
  if (info.ok) {
    const m = info.data;
    $("#model-version").textContent = m.model_version;
    $("#test-accuracy").textContent = pct(m.metrics.test_accuracy);
    $("#cv-accuracy").textContent = `${pct(m.metrics.cv_accuracy_mean)} ± ${pct(m.metrics.cv_accuracy_std)}`;
    $("#parity").textContent = m.parity_passed
      ? `passed: ${m.parity.cases} cases, max |Δp| ${num(m.parity.max_abs_prob_diff, 8)}`
      : `FAILED: ${m.parity.label_mismatches + m.parity.prob_mismatches} mismatches`;
    $("#created-at").textContent = when(m.created_at);
  }
  ready();
}
main();

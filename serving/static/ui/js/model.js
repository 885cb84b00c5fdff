import { $, api, clear, el, errorText, num, pct, ready, refreshStatus, unavailable, when } from "./app.js";
import { adminNote, adminProblem, bindToken, token } from "./admin.js";
import { barChart, legend, lineChart } from "./charts.js";

const facts = (node, pairs) =>
  clear(node, pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));

function renderInfo(m) {
  facts($("#model-facts"), [
    ["Version", el("code", { id: "info-version" }, m.model_version)],
    ["Type", m.model_type],
    ["Trees", m.n_estimators],
    ["Max leaves", m.max_leaf_nodes],
    ["Binning", m.binning],
    ["SMOTE", m.smote ? "yes" : "no"],
    ["Classes", m.classes.join(", ")],
    ["Inputs", m.features.map((f) => f.allowed ? `${f.name} (${f.allowed.join("/")})` : `${f.name} (${f.minimum}–${f.maximum})`).join(", ")],
    ["Trained", when(m.created_at)],
    ["Data", `${m.data_rows} rows, sha256 ${m.data_sha256.slice(0, 12)}…`],
    ["Git commit", m.git_commit ? m.git_commit.slice(0, 12) : "–"],
    ["ONNX opset", Object.entries(m.opset).map(([k, v]) => `${k || "ai.onnx"} ${v}`).join(", ")],
    ["Libraries", Object.entries(m.library_versions).map(([k, v]) => `${k} ${v}`).join(", ")],
  ]);
  const x = m.metrics;
  facts($("#metrics-facts"), [
    ["Test accuracy", el("span", { id: "info-accuracy" }, pct(x.test_accuracy))],
    [`CV accuracy (${x.cv_folds}-fold)`, `${pct(x.cv_accuracy_mean)} ± ${pct(x.cv_accuracy_std)}`],
    ["Macro F1", num(x.macro_f1)],
    ["Weighted F1", num(x.weighted_f1)],
    ["Rows", `${x.train_rows} train, ${x.test_rows} test`],
  ]);
  const p = m.parity;
  facts($("#parity-facts"), [
    ["Result", el("span", { class: m.parity_passed ? "tag ok" : "tag bad", id: "parity-result" }, m.parity_passed ? "passed" : "failed")],
    ["Cases", `${p.cases} (${Object.entries(p.groups).map(([k, v]) => `${k} ${v}`).join(", ")})`],
    ["Label mismatches", p.label_mismatches],
    ["Probability mismatches", p.prob_mismatches],
    ["Max |Δp|", `${p.max_abs_prob_diff.toExponential(2)} (tolerance ${p.tolerance})`],
  ]);
  const classes = m.classes;
  clear($("#per-class"),
    el("thead", {}, el("tr", {}, el("th", {}, "Class"), ["Precision", "Recall", "F1", "Support"].map((h) => el("th", { class: "num" }, h)))),
    el("tbody", {}, classes.map((c) => {
      const r = x.per_class[c] || {};
      return el("tr", {}, el("th", {}, c), el("td", { class: "num" }, num(r.precision, 2)),
        el("td", { class: "num" }, num(r.recall, 2)), el("td", { class: "num" }, num(r.f1, 2)),
        el("td", { class: "num" }, r.support ?? "–"));
    })));
  clear($("#cm-table"),
    el("thead", {}, el("tr", {}, el("th", {}, "true \\ predicted"), classes.map((c) => el("th", { class: "num" }, c)))),
    el("tbody", {}, x.confusion_matrix.map((row, i) =>
      el("tr", {}, el("th", {}, classes[i]), row.map((v) => el("td", { class: "num" }, v))))));
  // A new image URL per version, so a promotion shows the new matrix.
  $("#confusion-matrix").src = `/model/confusion_matrix.png?v=${encodeURIComponent(m.model_version)}`;
}

function renderImportance(x) {
  const names = x.players;
  const classes = Object.keys(x.base_values);
  const totals = names.map((n) => classes.reduce((sum, c) => sum + x.importance[n][c], 0));
  barChart($("#importance-chart"), { labels: names, values: totals,
    label: "Mean absolute contribution per input, summed over the classes", format: (v) => v.toFixed(3) });
  clear($("#importance-table"),
    el("thead", {}, el("tr", {}, el("th", {}, "Input"), classes.map((c) => el("th", { class: "num" }, c)))),
    el("tbody", {}, names.map((n) => el("tr", { "data-input": n }, el("th", {}, n),
      classes.map((c) => el("td", { class: "num" }, num(x.importance[n][c])))))));
  const g = x.gate;
  facts($("#explain-facts"), [
    ["Gate", el("span", { class: x.gate_passed ? "tag ok" : "tag bad", id: "explain-gate" }, x.gate_passed ? "passed" : "failed")],
    ["Cases", `${g.cases} (${Object.entries(g.groups).map(([k, v]) => `${k} ${v}`).join(", ")})`],
    ["Max |base + Σ values − p|", `${g.max_efficiency_error.toExponential(2)} (tolerance ${g.tolerance})`],
    ["Cells", `${x.cells} (${names.map((n) => x.cells_per_input[n]).join(" × ")})`],
    ["Background", `${x.background_rows} training rows, sha256 ${x.background_sha256.slice(0, 12)}…`],
    ["Base values", classes.map((c) => `${c} ${num(x.base_values[c], 2)}`).join(", ")],
  ]);
}

function renderVersions(reply) {
  const versions = reply.versions;
  // "20261127-035821-32b1e3" -> "11-27 03:58:21": short enough for an axis.
  const short = (v) => `${v.slice(4, 6)}-${v.slice(6, 8)} ${v.slice(9, 11)}:${v.slice(11, 13)}:${v.slice(13, 15)}`;
  const labels = versions.map((v) => short(v.version));
  const series = [
    { name: "test accuracy", values: versions.map((v) => v.metrics.test_accuracy), cls: "" },
    { name: "CV accuracy", values: versions.map((v) => v.metrics.cv_accuracy_mean), cls: "alt" },
  ];
  if (versions.length) {
    const lowest = Math.min(...series.flatMap((s) => s.values));
    lineChart($("#accuracy-chart"), { labels, series, label: "Accuracy across versions",
      format: (v) => pct(v, 0), min: Math.max(0, Math.floor((lowest - 0.05) * 20) / 20), max: 1 });
    clear($("#accuracy-legend"), legend(series));
  }
  const rows = [...versions].reverse().map((v) =>
    el("tr", { class: v.current ? "current" : "", "data-version": v.version },
      el("td", {}, el("code", {}, v.version)),
      el("td", {}, v.current ? el("span", { class: "tag ok" }, "serving")
        : el("button", { type: "button", class: "secondary", "data-promote": v.version,
          "aria-label": `Promote ${v.version}`, onclick: () => promote(v.version) }, "Promote")),
      el("td", {}, when(v.created_at)),
      el("td", { class: "num" }, pct(v.metrics.test_accuracy)),
      el("td", { class: "num" }, `${pct(v.metrics.cv_accuracy_mean)} ± ${pct(v.metrics.cv_accuracy_std)}`),
      el("td", { class: "wrap" }, `${v.params.n_estimators} trees, ${v.params.max_leaf_nodes} leaves${v.params.smote ? ", SMOTE" : ""}`),
      el("td", {}, el("span", { class: v.parity_passed ? "tag ok" : "tag bad" }, v.parity_passed ? "passed" : "failed")),
      el("td", {}, el("a", { href: `/models/${encodeURIComponent(v.version)}/confusion_matrix.png`,
        "aria-label": `Confusion matrix of ${v.version}` }, "matrix"))));
  clear($("#versions"),
    el("thead", {}, el("tr", {}, ["Version", "", "Trained", "Test acc.", "CV acc.", "Params", "Parity", "Image"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function adminMessage(result, success) {
  const box = $("#admin-message");
  if (result.ok) { box.className = "notice ok"; box.textContent = success; return; }
  box.className = "notice bad";
  box.textContent = adminProblem(result) || errorText(result);
}

async function switchTo(path, what) {
  const result = await api(path, { method: "POST", token: token($("#token")) });
  adminMessage(result, result.ok ? `${what}: now serving ${result.data.current_version}.` : "");
  if (result.ok) {
    // Every worker picks the new version up within about a second (hot reload).
    for (let i = 0; i < 20; i += 1) {
      const health = await refreshStatus();
      if (health && health.model_version === result.data.current_version) break;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    await load();
  }
}

const promote = (version) => switchTo(`/models/${encodeURIComponent(version)}/promote`, `Promoted ${version}`);

async function load() {
  const info = await api("/model/info");
  if (info.ok) renderInfo(info.data);
  else facts($("#model-facts"), [["Error", errorText(info)]]);
  const explained = await api("/model/explanations");
  $("#importance-body").hidden = !explained.ok;
  if (explained.ok) {
    clear($("#importance-unavailable"));
    renderImportance(explained.data);
  } else {
    clear($("#importance-unavailable"),
      el("p", { class: "notice", "data-unavailable": "explanations" }, errorText(explained)));
  }
  const models = await api("/models");
  if (models.status === 404) {
    clear($("#versions-unavailable"), unavailable("The version list (and promote, rollback)", null));
    $("#versions-body").hidden = true;
  } else if (models.ok) renderVersions(models.data);
  else clear($("#versions-unavailable"), el("p", { class: "notice bad" }, errorText(models)));
}

async function main() {
  bindToken($("#token"));
  const note = adminNote();
  if (note) $("#versions-unavailable").append(note);
  $("#rollback-button").addEventListener("click", () => switchTo("/models/rollback", "Rolled back"));
  await load();
  ready();
}
main();

import { $, api, clear, el, errorText, num, pct, ready, refreshStatus, unavailable } from "./app.js";
import { adminNote, adminProblem, bindToken, token } from "./admin.js";

const POLL_MS = 1000;

function params(form) {
  const value = (name) => {
    const text = form.elements[name].value.trim();
    return text === "" ? null : Number.isFinite(Number(text)) ? Number(text) : text;
  };
  return {
    n_estimators: value("n_estimators"),
    max_leaf_nodes: value("max_leaf_nodes"),
    test_size: value("test_size"),
    apply_smote: form.elements.apply_smote.checked,
    force: form.elements.force.checked,
  };
}

function clearErrors() {
  for (const node of document.querySelectorAll("[data-error-for]")) node.textContent = "";
  for (const node of document.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  $("#form-error").textContent = "";
}

function showError(result, fallbackField = null) {
  const admin = adminProblem(result);
  const named = result.data && result.data.field;
  // The server names the upload "file" and the token "Authorization"; the form's fields differ.
  const field = admin || named === "Authorization" ? "token" : named === "file" ? "dataset" : named || fallbackField;
  const text = admin || errorText(result);
  const target = field && document.getElementById(`err-${field}`);
  if (target) {
    target.textContent = text;
    const input = document.getElementById(field);
    if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
  } else $("#form-error").textContent = text;
}

function progress(text) {
  $("#progress").hidden = text === null;
  if (text !== null) $("#progress-text").textContent = text;
}

function showResult(r, file = null) {
  const facts = [
    ["New version", el("code", { id: "new-version" }, r.version)],
    ["Promoted", el("span", { id: "promoted", class: r.promoted ? "tag ok" : "tag bad" }, r.promoted ? "yes" : "no")],
    ["Why", el("span", { id: "reason" }, r.reason)],
    ["Test accuracy", el("span", { id: "result-accuracy" }, pct(r.test_accuracy ?? r.accuracy))],
    ["CV accuracy", `${pct(r.cv_accuracy_mean)} ± ${pct(r.cv_accuracy_std)}`],
    ["Parity", r.parity
      ? `${r.parity.passed ? "passed" : "FAILED"}: ${r.parity.mismatches} mismatches over ${r.parity.cases} cases (max |Δp| ${num(r.parity.max_abs_prob_diff, 8)})`
      : "–"],
    ["Previous version", r.previous_version || "–"],
    ["Serving after", el("code", {}, r.current_version || "–")],
    ["Data", el("span", { id: "result-data" }, `${r.data_rows ?? "?"} rows`,
      r.data_sha256 ? `, sha256 ${r.data_sha256.slice(0, 12)}…` : "", file ? ` (${file})` : "")],
    ["Took", r.duration_seconds !== undefined ? `${num(r.duration_seconds, 1)} s` : "–"],
  ];
  clear($("#result"), el("dl", { class: "facts", id: "retrain-result" },
    facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
}

/** Wait for every worker to serve `version` (hot reload takes about a second), then refresh. */
async function awaitServing(version) {
  for (let i = 0; i < 30; i += 1) {
    const health = await refreshStatus();
    if (health && health.model_version === version) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await showServing();
}

async function showServing() {
  const health = await refreshStatus();
  $("#serving-version").textContent = health?.model_version || "–";
}

async function poll(jobUrl, started, signalToken) {
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    const job = await api(jobUrl, { token: signalToken });
    if (!job.ok) return job;
    const seconds = Math.round((Date.now() - started) / 1000);
    if (job.data.state === "running") { progress(`Training, exporting and checking parity… ${seconds} s`); continue; }
    return job;
  }
}

async function submit(event) {
  event.preventDefault();
  clearErrors();
  const form = event.target;
  const secret = token($("#token"));
  const body = { ...params(form), wait: false };
  const file = $("#dataset").files[0];
  let request;
  if (file) {
    const data = new FormData();
    data.append("params", JSON.stringify(body));
    data.append("file", file, file.name);
    request = { method: "POST", form: data, token: secret };
  } else {
    request = { method: "POST", json: body, token: secret };
  }
  const button = $("#retrain-button");
  button.disabled = true;
  const started = Date.now();
  progress("Starting the job…");
  clear($("#result"));
  try {
    const answer = await api("/retrain?wait=false", request);
    if (answer.status === 404) { clear($("#retrain-unavailable"), unavailable("Retraining", "/docs")); progress(null); return; }
    if (!answer.ok) { progress(null); showError(answer, file ? "dataset" : null); return; }
    let result = answer.data;
    if (answer.status === 202 || result.job_url) {
      progress("Training, exporting and checking parity…");
      const job = await poll(result.job_url, started, secret);
      progress(null);
      if (!job.ok) { showError(job); return; }
      if (job.data.state !== "succeeded") {
        const error = job.data.error || {};
        clear($("#result"), el("p", { class: "notice bad", id: "retrain-failed" },
          `The retrain failed: ${error.message || "no reason given"}${error.code ? ` (${error.code})` : ""}.`));
        return;
      }
      result = job.data.result;
    }
    progress(null);
    showResult(result, file ? file.name : null);
    if (result.promoted) await awaitServing(result.current_version || result.version);
    document.body.dataset.retrainDone = "true";
  } finally {
    button.disabled = false;
  }
}

/** Ranges of the parameters from the API's own schema (RetrainRequest), not a copy here. */
async function applySchema() {
  const doc = await api("/docs/openapi.json");
  const props = doc.ok ? doc.data?.components?.schemas?.RetrainRequest?.properties : null;
  if (!props) return;
  for (const name of ["n_estimators", "max_leaf_nodes", "test_size"]) {
    const spec = props[name];
    const input = document.getElementById(name);
    if (!spec || !input) continue;
    const low = spec.minimum ?? spec.exclusiveMinimum;
    const high = spec.maximum ?? spec.exclusiveMaximum;
    if (low === undefined || high === undefined) continue;
    input.min = String(low);
    input.max = String(high);
    const kind = spec.type === "integer" ? "whole number" : "number";
    const from = spec.exclusiveMinimum !== undefined ? `> ${low}` : `≥ ${low}`;
    const to = spec.exclusiveMaximum !== undefined ? `< ${high}` : `≤ ${high}`;
    document.getElementById(`hint-${name}`).textContent = `${kind} ${from} and ${to}`;
  }
}

async function main() {
  bindToken($("#token"));
  const note = adminNote();
  if (note) $("#retrain-unavailable").append(note);
  await Promise.all([showServing(), applySchema()]);
  const info = await api("/model/info");
  if (info.ok) {
    // Start from the served model's parameters.
    const f = $("#retrain-form").elements;
    f.n_estimators.value = info.data.n_estimators;
    f.max_leaf_nodes.value = info.data.max_leaf_nodes;
    f.apply_smote.checked = info.data.smote;
  }
  // GET /models comes with retraining (the model lifecycle API); 404 means neither is here.
  const models = await api("/models");
  if (models.status === 404) {
    clear($("#retrain-unavailable"), unavailable("Retraining", null));
    $("#retrain-button").disabled = true;
  }
  $("#retrain-form").addEventListener("submit", submit);
  ready();
}
main();

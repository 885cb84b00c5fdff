import { $, api, clear, el, errorText, probabilityBars, ready } from "./app.js";
import { explanationView } from "./explain.js";

const EXAMPLE = { Age: 47, Sex: "M", BP: "LOW", Cholesterol: "HIGH", Na_to_K: 10.1 };
let features = [];

function rangeText(f) {
  const low = f.exclusive_minimum ? `> ${f.minimum}` : `≥ ${f.minimum}`;
  return `${f.type === "integer" ? "whole number" : "number"} ${low} and ≤ ${f.maximum}`;
}

function fieldFor(f) {
  const id = `f-${f.name}`;
  const error = el("p", { class: "error", id: `err-${f.name}`, "data-error-for": f.name });
  const hintId = `hint-${f.name}`;
  if (f.type === "category") {
    const options = f.allowed.map((value, i) =>
      el("label", {}, el("input", { type: "radio", name: f.name, value, checked: i === 0,
        "aria-describedby": `${hintId} err-${f.name}` }), el("span", {}, value)));
    return el("fieldset", { class: "field", "data-field": f.name },
      el("legend", {}, f.name, " ", el("span", { class: "hint", id: hintId }, f.description || "")),
      el("div", { class: "choices" }, options), error);
  }
  const input = el("input", {
    type: "number", id, name: f.name, required: true, min: f.minimum, max: f.maximum,
    step: f.type === "integer" ? "1" : "any", inputmode: f.type === "integer" ? "numeric" : "decimal",
    "aria-describedby": `${hintId} err-${f.name}`,
  });
  return el("div", { class: "field", "data-field": f.name },
    el("label", { for: id }, f.name, " ", el("span", { class: "hint", id: hintId }, rangeText(f))),
    input, error);
}

function readPatient(form) {
  const data = new FormData(form);
  const patient = {};
  for (const f of features) {
    const raw = data.get(f.name);
    if (f.type === "category") { patient[f.name] = raw; continue; }
    const text = (raw ?? "").toString().trim();
    // Send what was typed: the server, not the page, decides what is valid and says why.
    patient[f.name] = text === "" ? null : Number.isFinite(Number(text)) ? Number(text) : text;
  }
  return patient;
}

function clearErrors() {
  for (const node of document.querySelectorAll("[data-error-for]")) node.textContent = "";
  for (const node of document.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  $("#form-error").textContent = "";
}

function showError(result) {
  const field = result.data && result.data.field;
  const target = field && document.getElementById(`err-${field}`);
  if (target) {
    target.textContent = errorText(result);
    const input = document.getElementById(`f-${field}`);
    if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
  } else {
    $("#form-error").textContent = errorText(result);
  }
  clear($("#result"), el("p", { class: "muted" }, "No prediction: fix the input."));
}

function showResult(answer) {
  clear($("#result"),
    el("p", { class: "muted" }, "Predicted drug"),
    el("p", { class: "result-drug", id: "predicted-drug" }, answer.prediction),
    el("h3", {}, "Probability per class"),
    probabilityBars(answer.probabilities, answer.prediction),
    el("p", { class: "small muted" }, "Answered by model ",
      el("code", { id: "answer-version" }, answer.model_version)),
    el("h3", {}, "Why"),
    el("div", { id: "why" }, el("p", { class: "muted" }, "Explaining…")));
}

/** The why: exact Shapley values of the same patient (POST /explain). */
async function showWhy(patient) {
  const result = await api("/explain", { method: "POST", json: patient });
  const why = $("#why");
  if (!why) return;
  if (result.ok) clear(why, explanationView(result.data, patient));
  else clear(why, el("p", { class: "notice", "data-unavailable": "explanations" }, errorText(result)));
  document.body.dataset.explained = "true";
}

async function submit(event) {
  event.preventDefault();
  clearErrors();
  const button = $("#predict-button");
  button.disabled = true;
  delete document.body.dataset.explained;
  const patient = readPatient(event.target);
  const result = await api("/predict", { method: "POST", json: patient });
  button.disabled = false;
  if (result.ok) {
    showResult(result.data);
    await showWhy(patient);
  } else showError(result);
}

function fillExample() {
  const form = $("#predict-form");
  for (const [name, value] of Object.entries(EXAMPLE)) {
    const input = form.elements[name];
    if (!input) continue;
    if (input instanceof RadioNodeList) {
      for (const radio of input) radio.checked = radio.value === value;
    } else input.value = value;
  }
}

async function main() {
  const info = await api("/model/info");
  if (!info.ok) {
    clear($("#fields"), el("p", { class: "notice bad" }, `Cannot load the feature contract: ${errorText(info)}`));
    return;
  }
  features = info.data.features;
  clear($("#fields"), features.map(fieldFor));
  $("#predict-form").addEventListener("submit", submit);
  $("#example-button").addEventListener("click", fillExample);
  ready();
}
main();

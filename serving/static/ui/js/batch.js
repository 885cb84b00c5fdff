import { $, api, clear, config, downloadText, el, errorText, pct, ready } from "./app.js";
import { parseCsv, toCsv } from "./csv.js";
import { reasonSentence } from "./explain.js";

let features = [];
let classes = [];
let outcome = null; // {records, results} of the last run, for the download

/** Rows of the file as patient objects, typed by the contract (the server still validates). */
function toPatients(table) {
  const header = table[0].map((h) => h.trim());
  const names = features.map((f) => f.name);
  const missing = names.filter((n) => !header.includes(n));
  if (missing.length) throw new Error(`the header lacks ${missing.join(", ")} (it has ${header.join(", ")})`);
  const ignored = header.filter((h) => !names.includes(h));
  const kinds = Object.fromEntries(features.map((f) => [f.name, f.type]));
  const records = table.slice(1).map((cells, i) => {
    const patient = {};
    for (const name of names) {
      const raw = (cells[header.indexOf(name)] ?? "").trim();
      if (kinds[name] === "category") patient[name] = raw;
      else patient[name] = raw === "" ? null : Number.isFinite(Number(raw)) ? Number(raw) : raw;
    }
    return { row: i + 1, patient };
  });
  return { records, ignored };
}

/**
 * Predict the records in chunks of the server's max batch size. The server rejects a whole batch
 * at its first invalid patient and names its index: that row is set aside with the message and
 * the rest of the chunk is sent again, so every bad row is reported with its own reason.
 */
async function predictAll(records, onProgress) {
  const results = new Array(records.length).fill(null);
  let done = 0;
  for (let start = 0; start < records.length; start += config.maxBatchSize) {
    let pending = records.slice(start, start + config.maxBatchSize).map((r, k) => start + k);
    while (pending.length) {
      const answer = await api("/predict", { method: "POST", json: pending.map((i) => records[i].patient) });
      if (answer.ok) {
        answer.data.forEach((a, k) => { results[pending[k]] = { ok: true, answer: a }; });
        done += pending.length;
        break;
      }
      const index = answer.data && answer.data.index;
      const at = Number.isInteger(index) && index < pending.length ? index : pending.length === 1 ? 0 : null;
      if (at === null) {
        // Not about one row (server down, body too large ...): every pending row fails with it.
        for (const i of pending) results[i] = { ok: false, field: null, message: errorText(answer) };
        done += pending.length;
        break;
      }
      results[pending[at]] = { ok: false, field: answer.data.field, message: errorText(answer) };
      pending = pending.filter((_, k) => k !== at);
      done += 1;
      onProgress(done / records.length);
    }
    onProgress(done / records.length);
  }
  return results;
}

/**
 * Each predicted row's main reason (POST /explain, in chunks of the max batch size). Rows the
 * server refused are not sent again. Returns null, or why there are no reasons (e.g. a model
 * exported without explanations).
 */
async function explainAll(records, results) {
  const done = records.map((_, i) => i).filter((i) => results[i] && results[i].ok);
  for (let start = 0; start < done.length; start += config.maxBatchSize) {
    const chunk = done.slice(start, start + config.maxBatchSize);
    const answer = await api("/explain", { method: "POST", json: chunk.map((i) => records[i].patient) });
    if (!answer.ok) return errorText(answer);
    answer.data.forEach((a, k) => { results[chunk[k]].reason = reasonSentence(a, records[chunk[k]].patient); });
  }
  return null;
}

function renderResults(records, results) {
  const head = el("tr", {}, el("th", { class: "num" }, "Row"), features.map((f) => el("th", {}, f.name)),
    el("th", {}, "Prediction"), el("th", {}, "Main reason"), classes.map((c) => el("th", { class: "num" }, c)));
  const body = records.map((rec, i) => {
    const r = results[i];
    const cells = features.map((f) => el("td", {}, rec.patient[f.name] ?? ""));
    if (r.ok) {
      return el("tr", { "data-row": rec.row }, el("td", { class: "num" }, rec.row), cells,
        el("td", { "data-prediction": "" }, el("strong", {}, r.answer.prediction)),
        el("td", { "data-reason": "" }, r.reason || "–"),
        classes.map((c) => el("td", { class: "num" }, pct(r.answer.probabilities[c]))));
    }
    return el("tr", { class: "row-error", "data-row": rec.row }, el("td", { class: "num" }, rec.row), cells,
      el("td", { colspan: classes.length + 2 }, `error: ${r.message}`));
  });
  clear($("#results-table"), el("thead", {}, head), el("tbody", {}, body));
  $("#results-card").hidden = false;

  const errors = records.map((rec, i) => [rec, results[i]]).filter(([, r]) => !r.ok);
  clear($("#errors-table tbody"), errors.map(([rec, r]) =>
    el("tr", { "data-error-row": rec.row }, el("td", { class: "num" }, rec.row), el("td", {}, r.field || "–"),
      el("td", { class: "wrap" }, r.message))));
  $("#errors-card").hidden = errors.length === 0;
  return errors.length;
}

function download() {
  if (!outcome) return;
  const { records, results } = outcome;
  const header = ["row", ...features.map((f) => f.name), "prediction", "main_reason",
    ...classes.map((c) => `probability_${c}`), "model_version", "error"];
  const rows = records.map((rec, i) => {
    const r = results[i];
    const base = [rec.row, ...features.map((f) => rec.patient[f.name] ?? "")];
    return r.ok
      ? [...base, r.answer.prediction, r.reason || "", ...classes.map((c) => r.answer.probabilities[c]), r.answer.model_version, ""]
      : [...base, "", "", ...classes.map(() => ""), "", r.message];
  });
  downloadText("predictions.csv", toCsv(header, rows));
}

async function submit(event) {
  event.preventDefault();
  const summary = $("#batch-summary");
  const file = $("#csv-file").files[0];
  summary.className = "notice";
  if (!file) { summary.className = "notice bad"; summary.textContent = "Choose a CSV file first."; return; }
  let parsed;
  try {
    const table = parseCsv(await file.text());
    if (table.length < 2) throw new Error("it has no data rows under the header");
    parsed = toPatients(table);
  } catch (err) {
    summary.className = "notice bad";
    summary.textContent = `Cannot read ${file.name}: ${err.message}.`;
    return;
  }
  const button = $("#batch-button");
  const progress = $("#batch-progress");
  button.disabled = true; progress.hidden = false; progress.value = 0;
  summary.textContent = `Predicting ${parsed.records.length} rows…`;
  const results = await predictAll(parsed.records, (p) => { progress.value = p; });
  const noReasons = await explainAll(parsed.records, results);
  button.disabled = false; progress.hidden = true;
  outcome = { records: parsed.records, results };
  const bad = renderResults(parsed.records, results);
  const good = parsed.records.length - bad;
  const version = results.find((r) => r && r.ok)?.answer.model_version;
  summary.className = bad ? "notice bad" : "notice ok";
  summary.textContent = `${good} of ${parsed.records.length} rows predicted` +
    (version ? ` by model ${version}` : "") + (bad ? `; ${bad} with errors (listed below).` : ".") +
    (parsed.ignored.length ? ` Ignored columns: ${parsed.ignored.join(", ")}.` : "") +
    (noReasons ? ` No reasons: ${noReasons}` : "");
  $("#download-button").disabled = good === 0 && bad === 0;
  document.body.dataset.batchDone = "true";
}

async function main() {
  const info = await api("/model/info");
  if (!info.ok) {
    $("#batch-summary").className = "notice bad";
    $("#batch-summary").textContent = `Cannot load the feature contract: ${errorText(info)}`;
    return;
  }
  features = info.data.features;
  classes = info.data.classes;
  $("#columns-hint").textContent = `columns: ${features.map((f) => f.name).join(", ")}; at most ${config.maxBatchSize} rows per request`;
  $("#batch-form").addEventListener("submit", submit);
  $("#download-button").addEventListener("click", download);
  ready();
}
main();

// The Batch page's "Ground truth": a CSV of request_id, index and label columns, sent to
// POST /feedback in calls of up to 1,000 labels; the answer of each call is summed up.
import { $, api, clear, el, errorText } from "./app.js";
import { parseCsv } from "./csv.js";

const PER_CALL = 1000;

function items(rows) {
  const header = rows[0].map((h) => h.trim().toLowerCase());
  const at = (name) => header.indexOf(name);
  const [id, index, label] = [at("request_id"), at("index"), at("label")];
  if (id < 0 || label < 0) throw new Error("the header must name request_id and label (index is optional)");
  return rows.slice(1).map((r) => ({
    request_id: r[id].trim(),
    index: index >= 0 && r[index].trim() !== "" ? Number(r[index]) : 0,
    label: r[label].trim(),
  }));
}

async function send(event) {
  event.preventDefault();
  const summary = $("#labels-summary");
  const file = $("#labels-file").files[0];
  if (!file) { summary.className = "notice bad"; summary.textContent = "Choose a CSV file first."; return; }
  let all;
  try {
    all = items(parseCsv(await file.text()));
  } catch (err) {
    summary.className = "notice bad"; summary.textContent = `Cannot read ${file.name}: ${err.message}.`; return;
  }
  let recorded = 0;
  let unchanged = 0;
  for (let start = 0; start < all.length; start += PER_CALL) {
    const result = await api("/feedback", { method: "POST", json: all.slice(start, start + PER_CALL) });
    if (!result.ok) {
      const d = result.data || {};
      const row = d.index !== undefined && d.index !== null ? ` (row ${start + d.index + 1})` : "";
      summary.className = "notice bad";
      summary.textContent = `${recorded} labels recorded, then refused${row}: ${errorText(result)}`;
      return;
    }
    recorded += result.data.recorded;
    unchanged += result.data.unchanged;
  }
  summary.className = "notice ok";
  clear(summary, el("span", { id: "labels-done" },
    `${recorded} labels recorded, ${unchanged} already known. Accuracy per version is on the Monitoring page.`));
}

$("#labels-form").addEventListener("submit", send);

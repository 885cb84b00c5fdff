// Explanations in the pages: the main reason of a prediction in one sentence, and a waterfall
// from the base value to the probability. The numbers come from POST /explain (exact Shapley
// values: base value + the five inputs' values = the probability, for every class).
import { el } from "./app.js";
import { waterfall } from "./charts.js";

/** A patient's value as people read it ("25.36", "HIGH"). */
function shown(value) {
  return typeof value === "number" ? String(Number(value.toFixed(2))) : String(value);
}

/** The inputs' values for the predicted class, largest effect first: [{name, value}]. */
export function contributions(answer) {
  const drug = answer.prediction;
  return Object.entries(answer.values)
    .map(([name, byClass]) => ({ name, value: byClass[drug] }))
    .sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
}

/** "Na_to_K 25.4 raised DrugY by 0.61": the input that moved the predicted class most. */
export function reasonSentence(answer, patient) {
  const [top] = contributions(answer);
  if (!top || Math.abs(top.value) < 0.005) {
    return `No input moved ${answer.prediction} by more than 0.01 from its base value.`;
  }
  const verb = top.value >= 0 ? "raised" : "lowered";
  return `${top.name} ${shown(patient[top.name])} ${verb} ${answer.prediction} by ${Math.abs(top.value).toFixed(2)}`;
}

/** The "why" block of one explained patient: the sentence and the waterfall. */
export function explanationView(answer, patient) {
  const drug = answer.prediction;
  const chart = el("div", { class: "chart", id: "waterfall" });
  const steps = contributions(answer).map((c) => ({
    label: `${c.name} = ${shown(patient[c.name])}`, value: c.value }));
  waterfall(chart, {
    base: answer.base_values[drug], steps, final: answer.probabilities[drug],
    label: `How each input moved the probability of ${drug}`,
    baseLabel: `base ${drug}`, finalLabel: `P(${drug})`, format: (v) => v.toFixed(2),
  });
  return el("div", { class: "why" },
    el("p", { class: "reason", id: "reason" }, reasonSentence(answer, patient)),
    chart,
    el("p", { class: "small muted" },
      `Exact Shapley values: ${drug}'s base value (its mean probability over the training rows) `,
      "plus each input's contribution is its probability. ",
      "See ", el("a", { href: "/docs" }, "POST /explain"), "."));
}

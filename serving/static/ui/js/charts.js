// Tiny SVG charts (bars and a line) for the model and monitoring pages. Small on purpose: the
// UI needs a handful of simple charts, not a charting engine. Each chart has a text title and
// an aria-label; the numbers are also shown in tables next to them.

const NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function frame(label, width, height) {
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
  svg.append(svgEl("title", {}, label));
  return svg;
}

/**
 * Vertical bars. opts: {labels, values, label, format(v), max, height, classOf(v, i)}.
 */
export function barChart(container, opts) {
  const { labels, values, label = "chart", format = String, height = 180 } = opts;
  const width = 560;
  const pad = { top: 18, right: 8, bottom: 38, left: 8 };
  const svg = frame(label, width, height);
  const max = opts.max ?? Math.max(1e-9, ...values.map(Number));
  const n = Math.max(values.length, 1);
  const slot = (width - pad.left - pad.right) / n;
  const barW = Math.max(2, Math.min(60, slot * 0.7));
  const plotH = height - pad.top - pad.bottom;
  svg.append(svgEl("line", { class: "axis", x1: pad.left, x2: width - pad.right,
    y1: height - pad.bottom, y2: height - pad.bottom }));
  const every = Math.ceil(n / 8); // thin the x labels when there are many bars
  values.forEach((raw, i) => {
    const v = Number(raw) || 0;
    const h = max > 0 ? (Math.min(v, max) / max) * plotH : 0;
    const x = pad.left + i * slot + (slot - barW) / 2;
    const y = height - pad.bottom - h;
    const cls = opts.classOf ? opts.classOf(v, i) : "";
    const bar = svgEl("rect", { class: `bar ${cls}`.trim(), x, y, width: barW, height: Math.max(h, 0.5) });
    bar.append(svgEl("title", {}, `${labels[i]}: ${format(v)}`));
    svg.append(bar);
    if (n <= 12) svg.append(svgEl("text", { x: x + barW / 2, y: y - 4, "text-anchor": "middle" }, format(v)));
    if (i % every === 0) {
      svg.append(svgEl("text", { x: x + barW / 2, y: height - pad.bottom + 14, "text-anchor": "middle" },
        String(labels[i])));
    }
  });
  container.replaceChildren(svg);
  return svg;
}

/**
 * Lines with dots, one per series. opts: {labels, series: [{name, values, cls}], label,
 * format(v), min, max, height}. `values` alone draws one series.
 */
export function lineChart(container, opts) {
  const { labels, label = "chart", format = String, height = 200 } = opts;
  const series = opts.series || [{ name: label, values: opts.values, cls: "" }];
  const width = 560;
  const pad = { top: 20, right: 16, bottom: 40, left: 62 };
  const svg = frame(label, width, height);
  const all = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined).map(Number))
    .filter((v) => Number.isFinite(v));
  let min = opts.min ?? Math.min(...all);
  let max = opts.max ?? Math.max(...all);
  if (!Number.isFinite(min) || !Number.isFinite(max)) { min = 0; max = 1; }
  if (max - min < 1e-9) { min -= 0.05; max += 0.05; }
  const n = labels.length;
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const xAt = (i) => pad.left + (n <= 1 ? plotW / 2 : (i / (n - 1)) * plotW);
  const yAt = (v) => pad.top + (1 - (v - min) / (max - min)) * plotH;
  for (const tick of [min, (min + max) / 2, max]) {
    svg.append(svgEl("line", { class: "axis", x1: pad.left, x2: width - pad.right, y1: yAt(tick), y2: yAt(tick) }));
    svg.append(svgEl("text", { x: pad.left - 4, y: yAt(tick) + 4, "text-anchor": "end" }, format(tick)));
  }
  const every = Math.ceil(n / 6);
  labels.forEach((text, i) => {
    if (i % every === 0 || i === n - 1) {
      // The end labels hang inwards so they are not cut at the edges.
      const anchor = n > 1 && i === 0 ? "start" : n > 1 && i === n - 1 ? "end" : "middle";
      svg.append(svgEl("text", { x: xAt(i), y: height - pad.bottom + 18, "text-anchor": anchor }, String(text)));
    }
  });
  for (const s of series) {
    // null (no value, e.g. a time bucket without labels) leaves a gap: one polyline per run.
    const nums = s.values.map((v) => (v === null || v === undefined ? NaN : Number(v)));
    let run = [];
    for (const [i, v] of [...nums, NaN].entries()) {
      if (Number.isFinite(v)) { run.push(`${xAt(i)},${yAt(v)}`); continue; }
      if (run.length > 1) svg.append(svgEl("polyline", { class: `line ${s.cls || ""}`.trim(), points: run.join(" ") }));
      run = [];
    }
    nums.forEach((v, i) => {
      if (!Number.isFinite(v)) return;
      const dot = svgEl("circle", { class: `dot ${s.cls || ""}`.trim(), cx: xAt(i), cy: yAt(v), r: 4 });
      dot.append(svgEl("title", {}, `${s.name} · ${labels[i]}: ${format(v)}`));
      svg.append(dot);
    });
  }
  container.replaceChildren(svg);
  return svg;
}

/** A legend for the series of a line chart. */
export function legend(series) {
  const box = document.createElement("div");
  box.className = "legend";
  for (const s of series) {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = `swatch ${s.cls || ""}`.trim();
    item.append(swatch, ` ${s.name}`);
    box.append(item);
  }
  return box;
}

/**
 * A horizontal waterfall: from a base value, one step per contribution, to the final value.
 * opts: {base, steps: [{label, value}], final, label, baseLabel, finalLabel, format(v)}.
 * Each step is a bar from the running total to the running total plus its value.
 */
export function waterfall(container, opts) {
  const { base, steps, final, label = "chart", format = String } = opts;
  const width = 560;
  const rowH = 26;
  const pad = { top: 8, right: 64, bottom: 26, left: 150 };
  const rows = [{ label: opts.baseLabel || "base value", from: 0, to: base, cls: "total" }];
  let running = base;
  for (const step of steps) {
    rows.push({ label: step.label, from: running, to: running + step.value,
      cls: step.value >= 0 ? "up" : "down", value: step.value });
    running += step.value;
  }
  rows.push({ label: opts.finalLabel || "prediction", from: 0, to: final, cls: "total" });
  const height = pad.top + pad.bottom + rows.length * rowH;
  const svg = frame(label, width, height);
  const ends = rows.flatMap((r) => [r.from, r.to]);
  const lo = Math.min(0, ...ends);
  const hi = Math.max(1, ...ends);
  const plotW = width - pad.left - pad.right;
  const xAt = (v) => pad.left + ((v - lo) / (hi - lo)) * plotW;
  for (const tick of [lo, (lo + hi) / 2, hi]) {
    svg.append(svgEl("line", { class: "axis", x1: xAt(tick), x2: xAt(tick), y1: pad.top,
      y2: height - pad.bottom }));
    svg.append(svgEl("text", { x: xAt(tick), y: height - pad.bottom + 16, "text-anchor": "middle" },
      format(tick)));
  }
  rows.forEach((r, i) => {
    const y = pad.top + i * rowH + 4;
    const x1 = xAt(Math.min(r.from, r.to));
    const w = Math.max(1, Math.abs(xAt(r.to) - xAt(r.from)));
    svg.append(svgEl("text", { x: pad.left - 6, y: y + 13, "text-anchor": "end" }, r.label));
    const bar = svgEl("rect", { class: `wf ${r.cls}`, x: x1, y, width: w, height: rowH - 8,
      "data-step": r.label });
    const shown = r.value === undefined ? format(r.to) : `${r.value >= 0 ? "+" : "−"}${format(Math.abs(r.value))}`;
    bar.append(svgEl("title", {}, `${r.label}: ${shown}`));
    svg.append(bar);
    svg.append(svgEl("text", { x: x1 + w + 4, y: y + 13 }, shown));
  });
  container.replaceChildren(svg);
  return svg;
}

// Charts as inline SVG: colours come from classes in dashboard.css, tooltips from <title>.

import { fill, format, h } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const tip = (text) => s("title", {}, text);

/** The smallest 1, 2 or 5 times a power of ten at or above value (at least 1). */
export function niceMax(value) {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

function empty(container, text) {
  fill(container, h("p", { class: "muted chart-empty" }, text));
}

/** The container's width, so one SVG unit is one CSS pixel and text keeps the page's size. */
function widthOf(container) {
  return Math.max(360, Math.round(container.clientWidth || 640));
}

/**
 * Stacked bars per minute.
 * minutes: ISO minute starts; series: [{key, label, values}] (values aligned with minutes).
 */
export function stackedBars(container, { minutes, series, unit = "events" }) {
  const totals = minutes.map((_, i) => series.reduce((sum, one) => sum + one.values[i], 0));
  const top = Math.max(0, ...totals);
  if (top === 0) {
    empty(container, `No ${unit} in this span.`);
    return;
  }
  const width = widthOf(container);
  const height = 190;
  const m = { left: 40, right: 8, top: 10, bottom: 24 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const yMax = niceMax(top);
  const y = (v) => m.top + plotH - (v / yMax) * plotH;
  const step = plotW / minutes.length;
  const barW = Math.max(1, step * 0.78);

  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "bars",
    role: "img",
    "aria-label": `${unit} per minute`,
  });
  for (const value of [0, yMax / 2, yMax]) {
    svg.append(
      s("line", { x1: m.left, x2: width - m.right, y1: y(value), y2: y(value), class: "grid" }),
      s("text", { x: m.left - 6, y: y(value) + 4, class: "axis", "text-anchor": "end" },
        format.count(value)),
    );
  }
  const labelEvery = Math.ceil(minutes.length / 6);
  minutes.forEach((minute, i) => {
    const x = m.left + i * step + (step - barW) / 2;
    let base = 0;
    const column = s("g", { class: "column" });
    const parts = [];
    for (const one of series) {
      const value = one.values[i];
      if (!value) continue;
      parts.push(`${one.label} ${value}`);
      column.append(
        s("rect", {
          x,
          y: y(base + value),
          width: barW,
          height: Math.max(0.5, y(base) - y(base + value)),
          class: `seg ${one.key}`,
        }),
      );
      base += value;
    }
    // A transparent full-height target, so the tooltip shows anywhere in the column.
    column.append(
      s("rect", { x: m.left + i * step, y: m.top, width: step, height: plotH, class: "hit" },
        tip(`${format.minute(minute)} · ${parts.join(", ") || `no ${unit}`}`)),
    );
    svg.append(column);
    if (i % labelEvery === 0) {
      svg.append(
        s("text", { x: x + barW / 2, y: height - 6, class: "axis", "text-anchor": "middle" },
          format.minute(minute)),
      );
    }
  });
  fill(container, svg);
}

/** A legend for stackedBars' series. */
export function legend(container, series) {
  fill(
    container,
    series.map((one) =>
      h("span", { class: "key" }, h("span", { class: `swatch ${one.key}` }), one.label)),
  );
}

const PERCENTILES = [
  ["p50_ms", "p50"],
  ["p90_ms", "p90"],
  ["p99_ms", "p99"],
];

/**
 * Latency percentiles as horizontal bars, one group per row: [{label, stats}] where stats
 * holds count, p50_ms, p90_ms, p99_ms and max_ms. The max is a tick on the same scale.
 */
export function latencyBars(container, rows) {
  const measured = rows.filter((row) => row.stats.count > 0);
  if (measured.length === 0) {
    empty(container, "No joiner finished in this span.");
    return;
  }
  const top = niceMax(Math.max(...measured.map((row) => row.stats.max_ms)));
  const width = widthOf(container);
  const labelW = 170;
  const valueW = 90;
  const barH = 9;
  const groupH = PERCENTILES.length * (barH + 3) + 14;
  const plotW = width - labelW - valueW;
  const height = measured.length * groupH + 20;
  const x = (ms) => labelW + (ms / top) * plotW;
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "latency",
    role: "img",
    "aria-label": "provisioning latency percentiles",
  });
  for (const fraction of [0, 0.5, 1]) {
    svg.append(
      s("line", { x1: x(top * fraction), x2: x(top * fraction), y1: 0, y2: height - 18,
        class: "grid" }),
      s("text", { x: x(top * fraction), y: height - 4, class: "axis", "text-anchor": "middle" },
        format.duration(top * fraction)),
    );
  }
  measured.forEach((row, index) => {
    const top0 = index * groupH + 4;
    const { stats } = row;
    svg.append(
      s("text", { x: 0, y: top0 + 12, class: "label" }, row.label),
      s("text", { x: 0, y: top0 + 26, class: "axis" }, `${format.count(stats.count)} measured`),
    );
    PERCENTILES.forEach(([key, name], i) => {
      const yTop = top0 + i * (barH + 3);
      const value = stats[key];
      svg.append(
        s("rect", { x: labelW, y: yTop, width: Math.max(1, x(value) - labelW), height: barH,
          class: `pct ${name}` }, tip(`${row.label} ${name}: ${format.duration(value)}`)),
        s("text", { x: width - valueW + 6, y: yTop + barH - 1, class: "value" },
          `${name} ${format.duration(value)}`),
      );
    });
    const maxX = x(stats.max_ms);
    svg.append(
      s("line", { x1: maxX, x2: maxX, y1: top0 - 2, y2: top0 + PERCENTILES.length * (barH + 3),
        class: "max" }, tip(`${row.label} max: ${format.duration(stats.max_ms)}`)),
    );
  });
  fill(container, svg);
}

/**
 * A flow's events on one time axis: [{label, at (ms from the first), outcome}].
 * Each event is a dot on its own row, so close events stay readable.
 */
export function waterfall(container, steps) {
  if (steps.length === 0) {
    empty(container, "No events.");
    return;
  }
  const span = Math.max(1, ...steps.map((step) => step.at));
  const width = widthOf(container);
  const labelW = 240;
  const rowH = 20;
  const height = steps.length * rowH + 22;
  const plotW = width - labelW - 60;
  const x = (ms) => labelW + (ms / span) * plotW;
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "waterfall",
    role: "img",
    "aria-label": "the flow's events on a time line",
  });
  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(
      s("line", { x1: x(span * fraction), x2: x(span * fraction), y1: 0, y2: height - 18,
        class: "grid" }),
      s("text", { x: x(span * fraction), y: height - 4, class: "axis", "text-anchor": "middle" },
        `+${format.duration(span * fraction)}`),
    );
  }
  steps.forEach((step, i) => {
    const yMid = i * rowH + rowH / 2 + 2;
    svg.append(
      s("text", { x: 0, y: yMid + 4, class: "label" }, step.label),
      s("line", { x1: labelW, x2: x(step.at), y1: yMid, y2: yMid, class: "lead" }),
      s("circle", { cx: x(step.at), cy: yMid, r: 5, class: `dot ${step.outcome}` },
        tip(`${step.label}: +${format.duration(step.at)}`)),
    );
  });
  fill(container, svg);
}

// Small DOM helpers: elements are built from data with textContent, never from HTML strings.

/** An element with attributes (class, dataset, on<event>, others as attributes) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  appendAll(el, children);
  return el;
}

/** Append children: nodes as they are, anything else as text; null and false are skipped. */
export function appendAll(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return appendAll(el, children);
}

export const byId = (id) => document.getElementById(id);

/** Links to the two detail views. */
export const subjectHref = (id) => `#subject=${encodeURIComponent(id)}`;
export const correlationHref = (id) => `#correlation=${encodeURIComponent(id)}`;

const pad = (n, width = 2) => String(n).padStart(width, "0");

export const format = {
  /** 14:03:07 */
  time(iso) {
    const d = new Date(iso);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  },
  /** 14:03 */
  minute(iso) {
    const d = new Date(iso);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  },
  /** 2026-11-25 14:03:07.123 */
  stamp(iso) {
    const d = new Date(iso);
    return (
      `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${format.time(iso)}.${pad(d.getMilliseconds(), 3)}`
    );
  },
  /** 850 ms, 2.4 s, 3.5 min, 2.0 h */
  duration(ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
    if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
    return `${(ms / 3_600_000).toFixed(1)} h`;
  },
  /** 5 s ago, 3 min ago, 2 h ago, 4 d ago */
  ago(iso, now = Date.now()) {
    const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  },
  count(n) {
    return new Intl.NumberFormat().format(n);
  },
};

/** The outcome as a small coloured label. */
export function outcomeBadge(outcome) {
  return h("span", { class: `badge ${outcome}` }, outcome);
}

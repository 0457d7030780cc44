// The dashboard: asks for a token once, keeps the live stream open, routes between views.

import { AuthError, get, token } from "./api.js";
import { byId, correlationHref, fill, format, h, outcomeBadge, subjectHref } from "./dom.js";
import { AuditStream } from "./stream.js";
import { loadCorrelation, loadOverview, loadSubject } from "./views.js";

const REFRESH_MS = 5000;
const LIVE_ROWS = 200;
const STATES = {
  offline: "offline",
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  unauthorized: "token refused",
  stopped: "offline",
};

const state = {
  stream: null,
  minutes: 60,
  timer: null,
  view: null, // {kind: "overview"} or {kind: "subject"|"correlation", id}
  paused: false,
  held: [],
  shown: new Set(),
  reload: null,
};

// --- signing in and out ----------------------------------------------------------------------

function showSignIn(message = "") {
  byId("app").hidden = true;
  byId("lookup").hidden = true;
  byId("sign-out").hidden = true;
  byId("sign-in").hidden = false;
  const error = byId("sign-in-error");
  error.hidden = !message;
  error.textContent = message;
  byId("token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = byId("token");
  const value = input.value.trim();
  try {
    await get("v1/dashboard/approvals", { limit: 1 }, value); // does the token open the API?
  } catch (error) {
    showSignIn(error instanceof AuthError ? error.message : `The auditor cannot be reached: ${error.message}`);
    return;
  }
  input.value = "";
  token.set(value);
  start();
}

function signOut(message = "") {
  token.forget();
  state.stream?.stop();
  state.stream = null;
  clearInterval(state.timer);
  state.shown.clear();
  fill(byId("live-events"));
  showSignIn(message);
}

// --- the live stream ---------------------------------------------------------------------------

function setStreamState(name) {
  const badge = byId("stream-status");
  badge.dataset.state = name;
  badge.textContent = STATES[name] ?? name;
  if (name === "unauthorized") signOut("The token is no longer accepted: paste a valid one.");
}

function liveRow(record) {
  return h("li", {
    class: `event ${record.outcome}`,
    dataset: {
      testid: "live-event",
      recordId: record.record_id,
      eventId: record.source_event_id,
      eventType: record.event_type,
      subject: record.subject,
      correlationId: record.correlation_id,
    },
  },
  h("time", { datetime: record.occurred_at, title: format.stamp(record.occurred_at) },
    format.time(record.occurred_at)),
  h("div", { class: "event-main" },
    h("div", { class: "line" }, h("strong", {}, record.event_type), outcomeBadge(record.outcome)),
    h("div", { class: "line small" },
      h("a", { href: subjectHref(record.subject), title: "This subject's timeline" },
        record.subject),
      record.target ? h("span", { class: "chip" }, record.target) : null,
      h("a", { class: "flow", href: correlationHref(record.correlation_id),
        title: "The whole flow", dataset: { testid: "flow-link" } }, "flow ›"))));
}

function matchesFilter(row) {
  const text = byId("stream-filter").value.trim().toLowerCase();
  return !text || row.textContent.toLowerCase().includes(text);
}

function showRecord(record) {
  if (state.shown.has(record.record_id)) return; // a replay after a reconnect
  state.shown.add(record.record_id);
  const list = byId("live-events");
  const row = liveRow(record);
  row.hidden = !matchesFilter(row);
  list.prepend(row);
  while (list.children.length > LIVE_ROWS) {
    state.shown.delete(Number(list.lastElementChild.dataset.recordId));
    list.lastElementChild.remove();
  }
  byId("live-empty").hidden = true;
}

function onRecord(record) {
  if (state.paused) {
    state.held.push(record);
    state.held = state.held.slice(-LIVE_ROWS);
    byId("pause").textContent = `Resume (${state.held.length})`;
  } else {
    showRecord(record);
  }
  // The view about this record grows with it.
  const view = state.view;
  if ((view?.kind === "correlation" && view.id === record.correlation_id) ||
      (view?.kind === "subject" && view.id === record.subject)) {
    clearTimeout(state.reload);
    state.reload = setTimeout(() => showView(view), 400);
  }
}

function togglePause() {
  state.paused = !state.paused;
  const button = byId("pause");
  button.setAttribute("aria-pressed", String(state.paused));
  button.textContent = state.paused ? "Resume" : "Pause";
  if (!state.paused) {
    state.held.forEach(showRecord);
    state.held = [];
  }
}

function notice(text) {
  const el = byId("stream-notice");
  el.textContent = text;
  el.hidden = false;
}

// --- views -------------------------------------------------------------------------------------

function parseHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const kind of ["correlation", "subject"]) {
    const id = params.get(kind);
    if (id) return { kind, id };
  }
  return { kind: "overview" };
}

function banner(text) {
  const el = byId("banner");
  el.textContent = text;
  el.hidden = !text;
}

async function guarded(load) {
  try {
    await load();
    banner("");
  } catch (error) {
    if (error instanceof AuthError) signOut(error.message);
    else banner(`Could not load: ${error.message}`);
  }
}

async function refreshOverview() {
  if (document.hidden) return;
  await guarded(async () => {
    await loadOverview(state.minutes);
    byId("updated").textContent = `updated ${format.time(new Date().toISOString())}`;
  });
}

async function showView(view) {
  state.view = view;
  for (const kind of ["overview", "subject", "correlation"]) byId(kind).hidden = kind !== view.kind;
  clearInterval(state.timer);
  if (view.kind === "overview") {
    document.title = "Accord audit";
    await refreshOverview();
    if (state.view !== view) return; // the user moved on meanwhile
    state.timer = setInterval(refreshOverview, REFRESH_MS);
  } else if (view.kind === "subject") {
    document.title = `Subject ${view.id} · Accord audit`;
    await guarded(() => loadSubject(view.id));
  } else {
    document.title = `Flow ${view.id} · Accord audit`;
    await guarded(() => loadCorrelation(view.id));
  }
}

function lookup(event) {
  event.preventDefault();
  const id = byId("lookup-id").value.trim();
  if (!id) return;
  const kind = byId("lookup-kind").value;
  location.hash = kind === "subject" ? subjectHref(id) : correlationHref(id);
}

function chooseSpan(event) {
  const minutes = Number(event.target.dataset.minutes);
  if (!minutes) return;
  state.minutes = minutes;
  markSpan();
  refreshOverview();
}

function markSpan() {
  for (const button of document.querySelectorAll(".spans button")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.minutes) === state.minutes));
  }
}

// --- start -------------------------------------------------------------------------------------

function start() {
  byId("sign-in").hidden = true;
  byId("app").hidden = false;
  byId("lookup").hidden = false;
  byId("sign-out").hidden = false;
  state.stream = new AuditStream({ onRecord, onState: setStreamState, onNotice: notice }).start();
  showView(parseHash());
}

function boot() {
  byId("sign-in-form").addEventListener("submit", signIn);
  byId("sign-out").addEventListener("click", () => signOut());
  byId("lookup").addEventListener("submit", lookup);
  byId("pause").addEventListener("click", togglePause);
  byId("stream-filter").addEventListener("input", () => {
    for (const row of byId("live-events").children) row.hidden = !matchesFilter(row);
  });
  document.querySelector(".spans").addEventListener("click", chooseSpan);
  window.addEventListener("hashchange", () => {
    if (token.get()) showView(parseHash());
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.view?.kind === "overview" && token.get()) refreshOverview();
  });
  markSpan();
  if (token.get()) start();
  else showSignIn();
}

boot();

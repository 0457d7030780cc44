// The three views: the overview's cards and charts, a subject's timeline, a flow's story.

import { get, records } from "./api.js";
import { latencyBars, legend, stackedBars, waterfall } from "./charts.js";
import {
  byId,
  correlationHref,
  fill,
  format,
  h,
  outcomeBadge,
  subjectHref,
} from "./dom.js";

export const OUTCOMES = [
  { key: "success", label: "Success" },
  { key: "failure", label: "Failure" },
  { key: "pending", label: "Pending" },
  { key: "info", label: "Info" },
];

function card(label, value, hint, tone = "") {
  return h("div", { class: `stat ${tone}` },
    h("span", { class: "stat-label" }, label),
    h("strong", {}, value),
    hint ? h("span", { class: "muted" }, hint) : null);
}

function perMinute(minutes, rows, pick) {
  const index = new Map(minutes.map((minute, i) => [new Date(minute).getTime(), i]));
  const values = minutes.map(() => 0);
  for (const row of rows) {
    const i = index.get(new Date(row.minute).getTime());
    if (i !== undefined && pick(row)) values[i] += row.count;
  }
  return values;
}

function table(headers, rows, empty) {
  if (rows.length === 0) return h("p", { class: "muted" }, empty);
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((text) => h("th", {}, text)))),
    h("tbody", {}, rows));
}

// --- overview ------------------------------------------------------------------------------

/** Fetch and draw everything on the overview for the last `minutes`. */
export async function loadOverview(minutes) {
  const [activity, failures, latency, approvals] = await Promise.all([
    get("v1/dashboard/activity", { minutes }),
    get("v1/dashboard/failures", { minutes }),
    get("v1/dashboard/latency", { minutes }),
    get("v1/dashboard/approvals", { limit: 50 }),
  ]);
  const total = activity.items.reduce((sum, row) => sum + row.count, 0);
  const failed = failures.per_minute.reduce((sum, row) => sum + row.count, 0);
  const span = minutes < 60 ? `${minutes} min` : `${minutes / 60} h`;
  fill(byId("cards"),
    card("Events", format.count(total), `last ${span}`),
    card("Failures", format.count(failed), `last ${span}`, failed ? "bad" : ""),
    card("Pending approvals", format.count(approvals.count),
      approvals.items.some((a) => a.overdue) ? "some overdue" : "none overdue",
      approvals.items.some((a) => a.overdue) ? "warn" : ""),
    card("Joiner p90", format.duration(latency.joiner.p90_ms),
      `${format.count(latency.joiner.count)} joiner${latency.joiner.count === 1 ? "" : "s"}`));

  const series = OUTCOMES.map((o) => ({
    ...o,
    values: perMinute(activity.minutes, activity.items, (row) => row.outcome === o.key),
  }));
  stackedBars(byId("activity-chart"), { minutes: activity.minutes, series });
  legend(byId("activity-legend"), OUTCOMES);
  drawTypes(activity.items);

  stackedBars(byId("failures-chart"), {
    minutes: failures.minutes,
    series: [{ key: "failure", label: "Failures",
      values: perMinute(failures.minutes, failures.per_minute, () => true) }],
    unit: "failures",
  });
  fill(byId("failures-targets"), failures.per_target.length === 0 ? null : table(
    ["Target", "Failures", "Last"],
    failures.per_target.map((t) => h("tr", {},
      h("td", {}, t.target ?? h("span", { class: "muted" }, "no target")),
      h("td", { class: "num" }, format.count(t.count)),
      h("td", {}, h("code", {}, t.last_event_type), " ", h("span", { class: "muted" },
        format.ago(t.last_at))))),
    "No failures."));

  latencyBars(byId("latency-chart"), [
    { label: "Joiner, end to end", stats: latency.joiner },
    ...latency.per_target.map((t) => ({ label: `Account in ${t.target}`, stats: t })),
  ]);
  drawApprovals(approvals);
}

function drawTypes(items) {
  const byType = new Map();
  for (const row of items) {
    const entry = byType.get(row.event_type) ?? { total: 0, failure: 0 };
    entry.total += row.count;
    if (row.outcome === "failure") entry.failure += row.count;
    byType.set(row.event_type, entry);
  }
  const rows = [...byType.entries()].sort((a, b) => b[1].total - a[1].total).slice(0, 10);
  const top = rows.length ? rows[0][1].total : 1;
  const meter = (value) => {
    const bar = h("span", { class: "meter-bar" });
    bar.style.width = `${Math.max(2, (value / top) * 100)}%`; // CSSOM: allowed by the CSP
    return h("span", { class: "meter" }, bar);
  };
  fill(byId("types"), table(
    ["Type", "Events", ""],
    rows.map(([type, entry]) => h("tr", {},
      h("td", {}, h("code", {}, type)),
      h("td", { class: "num" }, format.count(entry.total),
        entry.failure ? h("span", { class: "badge failure" }, `${entry.failure} failed`) : null),
      h("td", { class: "meter-cell" }, meter(entry.total)))),
    "No events in this span."));
}

function drawApprovals(approvals) {
  const rows = approvals.items.map((a) => h("tr", { class: a.overdue ? "overdue" : "" },
    h("td", {}, h("a", { href: correlationHref(a.correlation_id) }, a.request_id)),
    h("td", {}, h("a", { href: subjectHref(a.principal_id ?? "") }, a.principal_id ?? "–")),
    h("td", {}, h("code", {}, `${a.application ?? "?"}/${a.entitlement ?? "?"}`)),
    h("td", {}, `${a.stage ?? "?"} of ${a.stages ?? "?"}`, " ",
      h("span", { class: "muted" }, a.stage_name ?? ""),
      a.escalated ? h("span", { class: "badge pending" }, "escalated") : null),
    h("td", {}, a.approvers.join(", ")),
    h("td", {}, format.ago(a.requested_at)),
    h("td", {}, a.due_at ? format.stamp(a.due_at).slice(0, 16) : "–",
      a.overdue ? h("span", { class: "badge failure" }, "overdue") : null)));
  const more = approvals.count > approvals.items.length
    ? h("p", { class: "muted" }, `… and ${approvals.count - approvals.items.length} more.`)
    : null;
  fill(byId("approvals"),
    table(["Request", "For", "Entitlement", "Stage", "Approvers", "Waiting", "Due"], rows,
      "Nothing waits for an approver."),
    more);
}

// --- timelines -----------------------------------------------------------------------------

function payloadDetails(record) {
  return h("details", {},
    h("summary", {}, "payload"),
    h("pre", {}, JSON.stringify(record.payload, null, 2)));
}

function timelineItem(record, { offsetMs = null, showSubject = false } = {}) {
  return h("li", {
    class: `step ${record.outcome}`,
    dataset: {
      testid: "story-event",
      recordId: record.record_id,
      eventType: record.event_type,
    },
  },
  h("div", { class: "when" },
    h("time", { datetime: record.occurred_at, title: format.stamp(record.occurred_at) },
      format.time(record.occurred_at)),
    h("span", { class: "muted" }, offsetMs !== null ? `+${format.duration(offsetMs)}`
      : format.stamp(record.occurred_at).slice(0, 10))),
  h("div", { class: "what" },
    h("div", { class: "line" }, h("strong", {}, record.event_type), outcomeBadge(record.outcome),
      record.target ? h("span", { class: "chip" }, record.target) : null),
    h("div", { class: "muted small" },
      "by ", h("code", {}, record.actor),
      showSubject ? [" · about ", h("a", { href: subjectHref(record.subject) }, record.subject)]
        : [" · flow ", h("a", { href: correlationHref(record.correlation_id) },
          record.correlation_id)],
      record.source_topic.endsWith(".dlq") ? h("span", { class: "badge failure" }, "dead letter")
        : null),
    payloadDetails(record)));
}

/** A subject's records, newest first, with the flows they belong to. */
export async function loadSubject(subject) {
  fill(byId("subject-id"), subject);
  const items = await records({ subject });
  const flows = [...new Set(items.map((r) => r.correlation_id))];
  fill(byId("subject-summary"), items.length
    ? `${format.count(items.length)} events · first ${format.stamp(items[0].occurred_at)}` +
      ` · last ${format.ago(items[items.length - 1].occurred_at)}`
    : "No events about this subject.");
  fill(byId("subject-flows"), flows.map((id) => h("a", { class: "chip", href: correlationHref(id) },
    `flow ${id.slice(0, 8)}…`)));
  fill(byId("subject-timeline"), [...items].reverse().map((r) => timelineItem(r)));
}

// The events that end a flow, and its outcome: a saga's, or a workflow run's (a cancelled
// run neither succeeded nor failed).
const FINISHED = {
  "saga.completed": "success",
  "saga.failed": "failure",
  "workflow.run_completed": "success",
  "workflow.run_failed": "failure",
  "workflow.run_cancelled": "info",
};

/** A flow's records in the order they happened, with offsets and a time line. */
export async function loadCorrelation(correlationId) {
  fill(byId("correlation-id"), correlationId);
  const items = (await records({ correlation_id: correlationId }))
    .sort((a, b) => new Date(a.occurred_at) - new Date(b.occurred_at) || a.record_id - b.record_id);
  const start = items.length ? new Date(items[0].occurred_at).getTime() : 0;
  const offset = (r) => new Date(r.occurred_at).getTime() - start;
  const last = items[items.length - 1];
  const ending = [...items].reverse().find((r) => r.event_type in FINISHED);
  const outcome = ending ? FINISHED[ending.event_type]
    : items.some((r) => r.outcome === "failure") ? "failure" : "pending";
  fill(byId("correlation-outcome"), items.length ? outcomeBadge(outcome) : "");
  const subjects = [...new Set(items.map((r) => r.subject))];
  fill(byId("correlation-cards"), items.length ? [
    card("Events", format.count(items.length)),
    card("Started", format.stamp(items[0].occurred_at).slice(11, 19),
      format.stamp(items[0].occurred_at).slice(0, 10)),
    card("Took", format.duration(offset(last)), ending ? ending.event_type : "not finished"),
    card("Subjects", subjects.length, subjects.slice(0, 2).join(", ")),
  ] : card("Events", "0", "Nothing recorded for this flow (yet)."));
  waterfall(byId("waterfall"), items.map((r) => ({
    label: r.target ? `${r.event_type} · ${r.target}` : r.event_type,
    at: offset(r),
    outcome: r.outcome,
  })));
  fill(byId("correlation-timeline"),
    items.map((r) => timelineItem(r, { offsetMs: offset(r), showSubject: true })));
}

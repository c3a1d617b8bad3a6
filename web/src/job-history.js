// The expanded view of one job: its next fire times, its policies and its
// last executions. Rows are kept per execution and updated in place, so a
// live re-read neither redraws the list nor moves keyboard focus.

import { formatDateTime, summarize } from "./jobs-table.js";

const UNFINISHED = new Set(["PENDING", "RUNNING", "RETRYING"]);

const CATCH_UP_WORDS = {
  NONE: "none (skip what was missed)",
  LATEST: "latest (run the most recent missed time once)",
  ALL: "all (run each missed time)",
};

const OVERLAP_WORDS = {
  FORBID: "forbid (skip while a run is unfinished)",
  ALLOW: "allow (run alongside)",
  REPLACE: "replace (cancel the previous run)",
};

const COLUMNS = [
  "Status",
  "Trigger",
  "Scheduled",
  "Started",
  "Duration",
  "HTTP",
  "Detail",
  "Actions",
];

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function timeElement(iso) {
  const node = element("time", "", formatDateTime(iso));
  node.dateTime = iso;
  node.title = iso;
  return node;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

export function formatDuration(ms) {
  if (ms == null) {
    return "—";
  }
  if (ms < 1000) {
    return `${ms} ms`;
  }
  const seconds = ms / 1000;
  if (seconds < 60) {
    return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds % 60)} s`;
}

/** A tone for an execution status; the scheduler's own decisions are amber. */
function toneOf(status) {
  switch (status) {
    case "SUCCEEDED":
      return "ok";
    case "FAILED":
    case "RETRYING":
      return "bad";
    case "SKIPPED":
    case "MISSED":
    case "CANCELLED":
      return "warn";
    default:
      return "neutral";
  }
}

function detailOf(execution, job) {
  const reason = execution.reason ?? "";
  if (execution.status === "MISSED") {
    const missed = `missed ${plural(execution.covers ?? 1, "fire time")}`;
    return reason ? `${missed}: ${reason}` : missed;
  }
  if (execution.error) {
    return execution.error;
  }
  if (reason) {
    return reason;
  }
  if (execution.status !== "SUCCEEDED") {
    return "";
  }
  // The HTTP column already shows the status; say only what else came back.
  const detail = summarize(execution, job).detail;
  return detail === `HTTP ${execution.httpStatus}` ? "" : detail;
}

function policyLines(policies, consecutiveFailures) {
  const lines = [
    ["Catch-up", CATCH_UP_WORDS[policies.catchUp] ?? policies.catchUp],
    ["Catch-up limit", String(policies.catchUpLimit)],
    ["Grace period", `${policies.misfireGraceSeconds} s`],
    ["Overlap", OVERLAP_WORDS[policies.overlap] ?? policies.overlap],
    ["Max in flight", String(policies.maxInFlight)],
    ["Jitter", `${policies.jitterSeconds} s`],
  ];
  const pause =
    policies.pauseAfterFailures == null
      ? "never"
      : `after ${plural(policies.pauseAfterFailures, "failure")} in a row`;
  const streak =
    consecutiveFailures > 0
      ? ` (${plural(consecutiveFailures, "failure")} in a row now)`
      : "";
  lines.push(["Auto-pause", `${pause}${streak}`]);
  return lines;
}

export class JobHistory {
  constructor(jobId) {
    this.jobId = jobId;
    this.rows = new Map();
    // Only the answer to the newest read may be shown.
    this.latest = 0;

    this.node = element("div", "history");
    this.heading = element("h3", "history-heading", "History");
    this.heading.tabIndex = -1;
    this.status = element("p", "history-status");
    this.status.setAttribute("role", "status");

    const facts = element("div", "history-facts");
    const next = element("section", "history-next");
    this.nextHeading = element("h4", "", "Next fire times");
    next.append(this.nextHeading);
    this.nextRuns = element("ol", "next-runs");
    next.append(this.nextRuns);

    const policies = element("section", "history-policies");
    policies.append(element("h4", "", "Policies"));
    this.policies = element("dl", "policy-list");
    policies.append(this.policies);
    facts.append(next, policies);

    this.table = element("table", "executions");
    const caption = element("caption", "visually-hidden", "Last 20 executions");
    const head = element("thead");
    const headRow = element("tr");
    for (const label of COLUMNS) {
      const th = element("th", "", label);
      th.scope = "col";
      headRow.append(th);
    }
    headRow.lastElementChild.replaceChildren(
      element("span", "visually-hidden", "Actions"),
    );
    head.append(headRow);
    this.body = element("tbody");
    this.table.append(caption, head, this.body);
    this.empty = element("p", "history-empty", "No executions yet.");
    this.empty.hidden = true;

    this.node.append(this.heading, this.status, facts, this.table, this.empty);
    this.facts = facts;
    facts.hidden = true;
    this.table.hidden = true;
  }

  /** Start a read; returns a check that is true while it is the newest. */
  begin() {
    const ticket = ++this.latest;
    if (this.rows.size === 0 && this.facts.hidden) {
      this.setStatus("Loading…");
    }
    return () => ticket === this.latest;
  }

  setStatus(text, tone = "") {
    this.status.textContent = text;
    this.status.dataset.tone = tone;
    this.status.hidden = !text;
  }

  /** Show a job read by the JOB_HISTORY query. */
  show(job) {
    this.setStatus("");
    this.heading.textContent = `History of ${job.name}`;

    // A paused job runs none of these until it is resumed.
    this.nextHeading.textContent =
      job.state === "PAUSED" ? "Next fire times, once resumed" : "Next fire times";

    this.nextRuns.replaceChildren(
      ...(job.nextRuns ?? []).map((iso) => {
        const item = element("li");
        item.append(timeElement(iso));
        return item;
      }),
    );
    if ((job.nextRuns ?? []).length === 0) {
      this.nextRuns.append(element("li", "muted", "none: it will not run again"));
    }

    this.policies.replaceChildren();
    if (job.policies) {
      for (const [term, value] of policyLines(job.policies, job.consecutiveFailures)) {
        this.policies.append(element("dt", "", term), element("dd", "", value));
      }
    }
    this.facts.hidden = false;

    const executions = job.executions?.edges.map((edge) => edge.node) ?? [];
    this.showExecutions(executions, job);
  }

  showExecutions(executions, job) {
    const keep = new Set(executions.map((execution) => execution.id));
    for (const [id, row] of this.rows) {
      if (!keep.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }

    // Move only rows that are out of place: moving a node drops its focus.
    let next = this.body.firstElementChild;
    for (const execution of executions) {
      let row = this.rows.get(execution.id);
      if (!row) {
        row = this.createRow(execution.id);
        this.rows.set(execution.id, row);
      }
      this.fill(row, execution, job);
      if (row === next) {
        next = next.nextElementSibling;
      } else {
        this.body.insertBefore(row, next);
      }
    }

    this.table.hidden = executions.length === 0;
    this.empty.hidden = executions.length > 0;
  }

  createRow(id) {
    const row = element("tr");
    row.dataset.executionId = id;
    // One wrapper per cell, as in the jobs table, keeps the narrow layout
    // to a label and its content.
    for (const label of COLUMNS) {
      const cell = element("td");
      cell.dataset.label = label;
      cell.append(element("div", "cell"));
      row.append(cell);
    }

    const cancel = element("button", "danger", "Cancel");
    cancel.type = "button";
    cancel.dataset.action = "cancel";
    cancel.dataset.executionId = id;
    row.lastElementChild.firstElementChild.append(cancel);
    return row;
  }

  fill(row, execution, job) {
    const [status, trigger, scheduled, started, duration, http, detail, actions] =
      [...row.children].map((cell) => cell.firstElementChild);

    const tone = toneOf(execution.status);
    const badge = element("span", "run-status", summarize(execution, job).label);
    badge.dataset.tone = tone;
    status.replaceChildren(badge);
    if (execution.attempt > 1) {
      status.append(element("span", "muted", ` attempt ${execution.attempt}`));
    }

    trigger.textContent = execution.trigger === "MANUAL" ? "manual" : "scheduled";

    scheduled.replaceChildren(
      execution.scheduledFor ? timeElement(execution.scheduledFor) : "—",
    );
    // Jitter and retries move when a run may start; show it while it waits.
    const waiting = execution.status === "PENDING" || execution.status === "RETRYING";
    if (waiting && execution.runAt && execution.runAt !== execution.scheduledFor) {
      const due = element("span", "muted run-at", "runs at ");
      due.append(timeElement(execution.runAt));
      scheduled.append(due);
    }

    started.replaceChildren(
      execution.startedAt ? timeElement(execution.startedAt) : "—",
    );
    duration.textContent = formatDuration(execution.durationMs);
    http.textContent = execution.httpStatus ?? "—";

    const text = detailOf(execution, job);
    detail.textContent = text;
    detail.title = text;
    detail.parentElement.dataset.tone = tone;

    const cancel = actions.querySelector("button");
    const cancellable = UNFINISHED.has(execution.status);
    if (!cancellable && cancel === document.activeElement) {
      // The run ended under the keyboard's focus; keep it in this view.
      this.heading.focus();
    }
    cancel.hidden = !cancellable;
    row.dataset.cancellable = String(cancellable);
    const when = execution.scheduledFor ?? execution.runAt;
    const which = when ? ` of ${formatDateTime(when)}` : "";
    cancel.setAttribute("aria-label", `Cancel the ${trigger.textContent} run${which}`);
  }
}

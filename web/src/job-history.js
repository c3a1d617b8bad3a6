// The expanded view of one job: its next fire times, its policies and its
// last executions. Rows are kept per execution and updated in place, so a
// live re-read neither redraws the list nor moves keyboard focus.

import { markMutating } from "./access.js";
import { formatDateTime, summarize } from "./jobs-table.js";

const UNFINISHED = new Set(["PENDING", "RUNNING", "RETRYING"]);
const RETRYABLE = new Set(["FAILED", "CANCELLED"]);

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
  "Started (actual)",
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
  if (detail && detail !== `HTTP ${execution.httpStatus}`) {
    return detail;
  }
  const last = execution.attempts?.at(-1);
  return last?.responseExcerpt ?? "";
}

// Header values that look like credentials are never shown in full.
const SENSITIVE_HEADER = /auth|token|secret|key|pass|signature|cookie|session/i;

export function maskHeader(name, value) {
  if (!SENSITIVE_HEADER.test(name)) {
    return String(value);
  }
  return "•••••• (hidden)";
}

const LOCAL_TIME = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

const UTC_TIME = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
  timeZone: "UTC",
});

function scheduleLines(schedule) {
  const lines = [["In words", schedule.description]];
  if (schedule.cron) {
    lines.push(["Cron", `${schedule.cron.expression} (${schedule.cron.timezone})`]);
  } else if (schedule.intervalSeconds != null) {
    lines.push(["Interval", plural(schedule.intervalSeconds, "second")]);
  } else if (schedule.at) {
    lines.push(["Once at", formatDateTime(schedule.at)]);
  }
  if (schedule.startAt) {
    lines.push(["Not before", formatDateTime(schedule.startAt)]);
  }
  if (schedule.endAt) {
    lines.push(["Not after", formatDateTime(schedule.endAt)]);
  }
  return lines;
}

function seconds(value) {
  return `${Number(value)} s`;
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
  lines.push([
    "Retry backoff",
    policies.retryBaseSeconds == null && policies.retryMaxSeconds == null
      ? "the daemon's"
      : `from ${policies.retryBaseSeconds == null ? "the daemon's base" : seconds(policies.retryBaseSeconds)}` +
        ` up to ${policies.retryMaxSeconds == null ? "the daemon's cap" : seconds(policies.retryMaxSeconds)}`,
  ]);
  lines.push([
    "History kept",
    policies.keepExecutions == null
      ? "by age (the daemon's retention)"
      : `the newest ${plural(policies.keepExecutions, "run")}`,
  ]);
  lines.push(["Alerts to", policies.alertUrl ?? "the daemon's TICKWORK_ALERT_URL"]);
  return lines;
}

function button(action, text, className = "", mutates = true) {
  const node = element("button", className, text);
  node.type = "button";
  node.dataset.action = action;
  if (mutates) {
    node.dataset.mutates = "";
  }
  return node;
}

function fillList(list, lines) {
  list.replaceChildren();
  for (const [term, value] of lines) {
    const dd = element("dd");
    if (value instanceof Node) {
      dd.append(value);
    } else {
      dd.textContent = value;
    }
    list.append(element("dt", "", term), dd);
  }
}

export class JobHistory {
  constructor(jobId) {
    this.jobId = jobId;
    this.rows = new Map();
    // Only the answer to the newest read may be shown.
    this.latest = 0;

    this.node = element("div", "history");
    this.heading = element("h3", "history-heading", "Job");
    this.heading.tabIndex = -1;
    this.status = element("p", "history-status");
    this.status.setAttribute("role", "status");

    const tools = element("div", "detail-actions");
    this.editButton = button("edit", "Edit");
    this.rotateButton = button("rotate", "Rotate signing secret");
    tools.append(this.editButton, this.rotateButton);

    const facts = element("div", "history-facts");
    const schedule = element("section", "history-schedule");
    schedule.append(element("h4", "", "Schedule"));
    this.schedule = element("dl", "policy-list");
    schedule.append(this.schedule);
    this.nextHeading = element("h4", "", "Next fire times");
    schedule.append(this.nextHeading);
    this.nextRuns = element("table", "preview-times next-runs");
    const nextHead = element("thead");
    const nextHeadRow = element("tr");
    for (const label of ["Your time", "UTC"]) {
      const th = element("th", "", label);
      th.scope = "col";
      nextHeadRow.append(th);
    }
    nextHead.append(nextHeadRow);
    this.nextBody = element("tbody");
    this.nextRuns.append(nextHead, this.nextBody);
    this.noNextRuns = element("p", "muted", "None: it will not run again.");
    schedule.append(this.nextRuns, this.noNextRuns);

    const action = element("section", "history-action");
    action.append(element("h4", "", "Action"));
    this.tlsWarning = element(
      "p",
      "tls-warning",
      "TLS verification is off: this job accepts any certificate.",
    );
    this.tlsWarning.setAttribute("role", "note");
    this.action = element("dl", "policy-list");
    this.payload = element("pre", "payload");
    this.secret = element("div", "secret-once");
    this.secret.setAttribute("role", "status");
    this.secret.hidden = true;
    action.append(this.tlsWarning, this.action, this.secret, this.payload);

    const policies = element("section", "history-policies");
    policies.append(element("h4", "", "Policies"));
    this.policies = element("dl", "policy-list");
    policies.append(this.policies);
    facts.append(schedule, action, policies);

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

    const runsHeading = element("h4", "", "Executions");
    this.node.append(
      this.heading,
      tools,
      this.status,
      facts,
      runsHeading,
      this.table,
      this.empty,
    );
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

  /** Show a new signing secret, the one time it can be seen. */
  showSecret(value) {
    this.secret.replaceChildren(
      element("p", "", "New signing secret, shown this once:"),
      element("code", "secret-value", value),
    );
    this.secret.hidden = false;
  }

  setStatus(text, tone = "") {
    this.status.textContent = text;
    this.status.dataset.tone = tone;
    this.status.hidden = !text;
  }

  /** Show a job read by the JOB_HISTORY query. */
  show(job) {
    this.setStatus("");
    this.heading.textContent = `Job ${job.name}`;
    this.editButton.setAttribute("aria-label", `Edit ${job.name}`);
    this.rotateButton.setAttribute(
      "aria-label",
      `Rotate the signing secret of ${job.name}`,
    );
    this.rotateButton.hidden = !job.action?.webhook;

    fillList(this.schedule, scheduleLines(job.schedule));

    // A paused job runs none of these until it is resumed.
    this.nextHeading.textContent =
      job.state === "PAUSED" ? "Next fire times, once resumed" : "Next fire times";
    const nextRuns = job.nextRuns ?? [];
    this.nextBody.replaceChildren(
      ...nextRuns.map((iso) => {
        const row = element("tr");
        const local = element("td");
        const utc = element("td");
        const date = new Date(iso);
        const localTime = timeElement(iso);
        localTime.textContent = LOCAL_TIME.format(date);
        const utcTime = timeElement(iso);
        utcTime.textContent = `${UTC_TIME.format(date)} UTC`;
        local.append(localTime);
        utc.append(utcTime);
        row.append(local, utc);
        return row;
      }),
    );
    this.nextRuns.hidden = nextRuns.length === 0;
    this.noNextRuns.hidden = nextRuns.length > 0;

    const webhook = job.action?.webhook;
    const lines = [];
    if (webhook) {
      lines.push(["Kind", "webhook (POST)"], ["URL", webhook.url]);
      const headers = Object.entries(webhook.headers ?? {});
      const secret = webhook.secretHeaderNames ?? [];
      const list = element("ul", "headers");
      for (const [name, value] of headers) {
        list.append(element("li", "", `${name}: ${maskHeader(name, value)}`));
      }
      for (const name of secret) {
        list.append(element("li", "", `${name}: •••••• (secret, never shown)`));
      }
      lines.push(["Headers", headers.length + secret.length > 0 ? list : "none"]);
      lines.push([
        "Signing secret",
        job.previousSigningSecretUntil
          ? `set; the previous one also signs until ${formatDateTime(job.previousSigningSecretUntil)}`
          : "set (never shown again)",
      ]);
      lines.push(["TLS", webhook.verifyTls ? "verified" : "NOT verified"]);
      lines.push(["Redirects", webhook.followRedirects ? "followed" : "not followed"]);
    } else {
      lines.push(
        ["Kind", "fetch (GET, keeps the JSON)"],
        ["URL", job.action?.fetch?.url ?? "the built-in quote"],
      );
    }
    lines.push(
      ["Retries", String(job.maxRetries ?? "—")],
      ["Timeout", job.timeoutSeconds == null ? "—" : seconds(job.timeoutSeconds)],
    );
    fillList(this.action, lines);
    this.tlsWarning.hidden = !(webhook && webhook.verifyTls === false);
    this.payload.textContent =
      job.payload == null ? "No payload." : JSON.stringify(job.payload, null, 2);

    if (job.policies) {
      fillList(this.policies, policyLines(job.policies, job.consecutiveFailures));
    }
    this.facts.hidden = false;

    const executions = job.executions?.edges.map((edge) => edge.node) ?? [];
    this.showExecutions(executions, job);
    markMutating(this.node);
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

    const cancel = button("cancel", "Cancel", "danger");
    cancel.dataset.executionId = id;
    const retry = button("retry", "Retry");
    retry.dataset.executionId = id;
    row.lastElementChild.firstElementChild.append(cancel, retry);
    return row;
  }

  fill(row, execution, job) {
    const [status, trigger, scheduled, started, duration, http, detail, actions] =
      [...row.children].map((cell) => cell.firstElementChild);

    const tone = toneOf(execution.status);
    const badge = element("span", "run-status", summarize(execution, job).label);
    badge.dataset.tone = tone;
    status.replaceChildren(badge);
    if (execution.attempt >= 1) {
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

    const [cancel, retry] = actions.querySelectorAll("button");
    const cancellable = UNFINISHED.has(execution.status);
    const retryable = RETRYABLE.has(execution.status);
    const focused = document.activeElement;
    if (
      (!cancellable && cancel === focused) ||
      (!retryable && retry === focused)
    ) {
      // The run changed under the keyboard's focus; keep it in this view.
      this.heading.focus();
    }
    cancel.hidden = !cancellable;
    retry.hidden = !retryable;
    row.dataset.actionable = String(cancellable || retryable);
    row.dataset.status = execution.status;
    const when = execution.scheduledFor ?? execution.runAt;
    const which = when ? ` of ${formatDateTime(when)}` : "";
    cancel.setAttribute("aria-label", `Cancel the ${trigger.textContent} run${which}`);
    retry.setAttribute("aria-label", `Retry the ${trigger.textContent} run${which}`);
  }
}

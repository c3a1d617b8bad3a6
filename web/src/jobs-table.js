// The jobs table. Rows are built once per job and then updated in place, so a
// live event never moves keyboard focus or redraws the whole table.

import { markMutating } from "./access.js";
import { RECENT_RUNS } from "./graphql.js";

const PREVIEW_LENGTH = 80;

const STATE_LABELS = {
  ACTIVE: "Active",
  PAUSED: "Paused",
  COMPLETED: "Completed",
};

// Made once: toLocaleString() builds a new formatter on every call, which
// costs more than the rest of drawing a row of the table.
const TIME_FORMAT = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
const DATE_TIME_FORMAT = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "medium",
});

/** Show an ISO date-time in local time; the date only when not today. */
export function formatDateTime(iso) {
  if (!iso) {
    return "";
  }
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return iso;
  }
  const today = new Date().toDateString() === date.toDateString();
  return today ? TIME_FORMAT.format(date) : DATE_TIME_FORMAT.format(date);
}

function truncate(text) {
  return text.length > PREVIEW_LENGTH
    ? `${text.slice(0, PREVIEW_LENGTH - 1)}…`
    : text;
}

function asQuote(value) {
  const item = Array.isArray(value) && value.length === 1 ? value[0] : value;
  const isQuote =
    item !== null &&
    typeof item === "object" &&
    typeof item.content === "string" &&
    typeof item.author === "string";
  return isQuote ? `${item.content} — ${item.author}` : null;
}

function preview(value) {
  return truncate(typeof value === "string" ? value : JSON.stringify(value));
}

function successDetail(execution, job) {
  const quote = asQuote(execution.result);
  if (quote !== null) {
    return quote;
  }
  if (job.action?.fetch && execution.result != null) {
    return preview(execution.result);
  }
  if (execution.httpStatus != null) {
    return `HTTP ${execution.httpStatus}`;
  }
  return execution.result != null ? preview(execution.result) : "";
}

function failureDetail(execution) {
  if (execution.error) {
    return execution.error;
  }
  return execution.httpStatus != null ? `HTTP ${execution.httpStatus}` : "";
}

/**
 * Describe a job's latest execution as a tone (ok, bad or neutral), a short
 * label and a detail line.
 */
export function summarize(execution, job) {
  if (!execution) {
    return { tone: "neutral", label: "Not run yet", detail: "" };
  }

  switch (execution.status) {
    case "SUCCEEDED":
      return {
        tone: "ok",
        label: "Succeeded",
        detail: successDetail(execution, job),
      };
    case "FAILED":
      return { tone: "bad", label: "Failed", detail: failureDetail(execution) };
    case "RETRYING":
      return {
        tone: "bad",
        label: "Retrying",
        detail: failureDetail(execution),
      };
    case "PENDING":
      return { tone: "neutral", label: "Pending", detail: "" };
    case "RUNNING":
      return { tone: "neutral", label: "Running…", detail: "" };
    default: {
      // SKIPPED, MISSED and CANCELLED: the scheduler's decisions, not errors.
      const word = execution.status.toLowerCase();
      return {
        tone: "warn",
        label: word.charAt(0).toUpperCase() + word.slice(1),
        detail: execution.reason ?? execution.error ?? "",
      };
    }
  }
}

function executionTime(execution) {
  return (
    execution.finishedAt ?? execution.startedAt ?? execution.scheduledFor ?? null
  );
}

export const FINAL_STATUSES = new Set([
  "SUCCEEDED",
  "FAILED",
  "SKIPPED",
  "MISSED",
  "CANCELLED",
]);

// How far one execution has got: PENDING, then RUNNING or RETRYING per attempt,
// then a final status.
function progress(execution) {
  if (FINAL_STATUSES.has(execution.status)) {
    return Infinity;
  }
  const running = execution.status === "PENDING" ? 0 : 1;
  return execution.attempt * 2 + running;
}

function startOf(execution) {
  return Date.parse(execution.scheduledFor ?? execution.startedAt ?? "");
}

/**
 * Whether `candidate` should replace `current` as a job's latest execution.
 *
 * A list read can race a live event and carry an older state, so a newer run
 * wins over an older one, and a later state of the same run over an earlier.
 */
function isLatest(candidate, current) {
  if (!current) {
    return true;
  }
  if (candidate.id === current.id) {
    return progress(candidate) >= progress(current);
  }
  const candidateStart = startOf(candidate);
  const currentStart = startOf(current);
  if (Number.isNaN(candidateStart) || Number.isNaN(currentStart)) {
    return true;
  }
  return candidateStart >= currentStart;
}

/**
 * The strip's runs with `execution` put in: replaced in place when known
 * (a later state of the same run), else added as the newest. Capped at the
 * strip's length.
 */
function mergeRun(runs, execution) {
  const index = runs.findIndex((run) => run.id === execution.id);
  if (index >= 0) {
    if (progress(execution) < progress(runs[index])) {
      return runs;
    }
    const merged = [...runs];
    merged[index] = { ...runs[index], ...execution };
    return merged;
  }
  return [execution, ...runs].slice(0, RECENT_RUNS);
}

const STRIP_TONES = {
  SUCCEEDED: "ok",
  FAILED: "bad",
  RETRYING: "bad",
  SKIPPED: "warn",
  MISSED: "warn",
  CANCELLED: "warn",
};

/** How a run reads to a screen reader and in its tooltip. */
function describeRun(run) {
  const word = run.status.charAt(0) + run.status.slice(1).toLowerCase();
  const parts = [word];
  if (run.durationMs != null) {
    parts.push(formatMs(run.durationMs));
  }
  const when = run.startedAt ?? run.scheduledFor;
  if (when) {
    parts.push(formatDateTime(when));
  }
  if (run.error) {
    parts.push(run.error);
  }
  return parts.join(", ");
}

export function formatMs(ms) {
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

/**
 * Fill the strip: oldest run on the left, one bar per run, coloured by
 * outcome, its height growing with the duration (log scale, so a 10 s run
 * beside 50 ms ones stands out without flattening them). A run not finished
 * yet is a short grey bar.
 */
function fillStrip(node, runs) {
  const ordered = [...runs].reverse();
  node.replaceChildren(
    ...ordered.map((run) => {
      const bar = element("span", "bar");
      bar.dataset.tone = STRIP_TONES[run.status] ?? "neutral";
      bar.dataset.status = run.status;
      // 8 px for an instant run, 14 for 10 ms, 20 for 1 s, 30 for a minute.
      const ms = run.durationMs ?? 0;
      const height = Math.min(30, 8 + Math.log10(1 + ms) * 4.5);
      bar.style.height = `${Math.round(height)}px`;
      bar.title = describeRun(run);
      return bar;
    }),
  );
  const failures = runs.filter((run) => STRIP_TONES[run.status] === "bad").length;
  node.setAttribute(
    "aria-label",
    runs.length === 0
      ? "No runs yet"
      : `Last ${runs.length} runs, newest last: ${failures} failed. ` +
          ordered.map(describeRun).join("; "),
  );
}

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

// One wrapper per cell keeps the narrow layout, a label beside the content,
// to two columns.
function cell(tag, label, ...children) {
  const node = element(tag);
  node.dataset.label = label;
  const content = element("div", "cell");
  content.append(...children);
  node.append(content);
  return node;
}

function button(action, text, className = "") {
  const node = element("button", className, text);
  node.type = "button";
  node.dataset.action = action;
  return node;
}

function setTime(node, iso) {
  node.textContent = iso ? formatDateTime(iso) : "—";
  if (iso) {
    node.dateTime = iso;
    node.title = iso;
  } else {
    node.removeAttribute("datetime");
    node.removeAttribute("title");
  }
}

export class JobsTable {
  /**
   * `onAction(action, job, button)` is called for the row buttons, with
   * action one of "pause", "resume", "trigger", "history" and "delete", and
   * for the buttons inside a job's expanded row (such as "cancel").
   */
  constructor({ body, empty, onAction }) {
    this.body = body;
    this.empty = empty;
    this.jobs = new Map();
    this.rows = new Map();
    // The expanded row under a job's row, once it was first opened.
    this.details = new Map();

    body.addEventListener("click", (event) => {
      const target = event.target.closest("button[data-action]");
      const row = target?.closest("tr[data-job-id]");
      const job = row && this.jobs.get(row.dataset.jobId);
      if (job) {
        onAction(target.dataset.action, job, target);
      }
    });
  }

  /** Replace the whole list, keeping the rows (and focus) of kept jobs. */
  setJobs(jobs) {
    const keep = new Set(jobs.map((job) => job.id));
    for (const id of [...this.jobs.keys()]) {
      if (!keep.has(id)) {
        this.remove(id);
      }
    }

    // Move only rows that are out of place: moving a node drops its focus.
    // A job's expanded row travels right below it.
    let next = this.body.firstElementChild;
    for (const job of jobs) {
      const rows = [this.upsert(job)];
      if (this.details.has(job.id)) {
        rows.push(this.details.get(job.id));
      }
      for (const row of rows) {
        if (row === next) {
          next = next.nextElementSibling;
        } else {
          this.body.insertBefore(row, next);
        }
      }
    }
    this.updateEmpty();
  }

  /** Add or update one job's row; new jobs go to the end. */
  upsert(job) {
    const known = this.jobs.get(job.id)?.lastExecution;
    if (known && !(job.lastExecution && isLatest(job.lastExecution, known))) {
      job = { ...job, lastExecution: known };
    }
    this.jobs.set(job.id, job);
    let row = this.rows.get(job.id);
    if (!row) {
      row = this.createRow(job.id);
      this.rows.set(job.id, row);
      this.body.append(row);
    }
    this.fill(row, job);
    this.updateEmpty();
    return row;
  }

  remove(id) {
    this.rows.get(id)?.remove();
    this.rows.delete(id);
    this.details.get(id)?.remove();
    this.details.delete(id);
    this.jobs.delete(id);
    this.updateEmpty();
  }

  isExpanded(id) {
    const detail = this.details.get(id);
    return Boolean(detail && !detail.hidden);
  }

  /**
   * Show `content` in a full-width row under the job's row, or hide that row
   * when `content` is null.
   */
  setExpanded(id, content) {
    const row = this.rows.get(id);
    if (!row) {
      return;
    }

    let detail = this.details.get(id);
    if (content && !detail) {
      detail = element("tr", "detail-row");
      detail.id = `detail-${id}`;
      detail.dataset.jobId = id;
      const cell = element("td");
      cell.colSpan = row.children.length;
      detail.append(cell);
      this.details.set(id, detail);
    }
    if (content) {
      if (detail.firstElementChild.firstChild !== content) {
        detail.firstElementChild.replaceChildren(content);
      }
      if (row.nextElementSibling !== detail) {
        row.after(detail);
      }
    }
    if (detail) {
      detail.hidden = !content;
    }

    const toggle = row.querySelector('button[data-action="history"]');
    toggle.setAttribute("aria-expanded", String(Boolean(content)));
  }

  /** Show a new execution state; false when the job is not in the table. */
  applyExecution(execution) {
    const job = this.jobs.get(execution.jobId);
    if (!job) {
      return false;
    }
    const recentRuns = mergeRun(job.recentRuns ?? [], execution);
    const lastExecution = isLatest(execution, job.lastExecution)
      ? execution
      : job.lastExecution;
    this.upsert({ ...job, lastExecution, recentRuns });
    return true;
  }

  updateEmpty() {
    this.empty.hidden = this.jobs.size > 0;
  }

  createRow(id) {
    const row = element("tr");
    row.dataset.jobId = id;

    const name = element("span", "job-name");
    const target = element("span", "job-target");
    const schedule = element("span", "schedule");
    const badge = element("span", "badge");
    const reason = element("span", "state-reason");
    const next = element("time");
    const result = element("div", "result");
    const strip = element("div", "strip");
    strip.setAttribute("role", "img");

    const actions = element("div", "row-actions");
    const history = button("history", "Details");
    history.setAttribute("aria-expanded", "false");
    history.setAttribute("aria-controls", `detail-${id}`);
    const pause = button("pause", "Pause");
    const trigger = button("trigger", "Run now");
    const remove = button("delete", "Delete", "danger");
    for (const mutating of [pause, trigger, remove]) {
      mutating.dataset.mutates = "";
    }
    actions.append(pause, trigger, history, remove);

    row.append(
      cell("th", "Name", name, target),
      cell("td", "Schedule", schedule),
      cell("td", "State", badge, reason),
      cell("td", "Next run", next),
      cell("td", "Latest result", result),
      cell("td", "Recent runs", strip),
      cell("td", "Actions", actions),
    );
    row.firstElementChild.scope = "row";
    return row;
  }

  fill(row, job) {
    const [
      nameCell,
      scheduleCell,
      stateCell,
      nextCell,
      resultCell,
      stripCell,
      actionCell,
    ] = row.children;

    nameCell.querySelector(".job-name").textContent = job.name;
    const url = job.action?.webhook?.url ?? job.action?.fetch?.url ?? "";
    const kind = job.action?.webhook ? "webhook" : "fetch";
    nameCell.querySelector(".job-target").textContent = url
      ? `${kind} ${url}`
      : kind;
    if (job.action?.webhook && job.action.webhook.verifyTls === false) {
      nameCell
        .querySelector(".job-target")
        .append(" ", element("span", "tls-off", "TLS not verified"));
    }

    scheduleCell.querySelector(".schedule").textContent =
      job.schedule?.description ?? "";

    const badge = stateCell.querySelector(".badge");
    badge.textContent = STATE_LABELS[job.state] ?? job.state;
    badge.dataset.state = job.state;
    stateCell.querySelector(".state-reason").textContent = job.stateReason ?? "";

    const next = nextCell.querySelector("time");
    if (job.state === "PAUSED") {
      // Its stored next run is not when it runs: nothing runs until resumed.
      setTime(next, null);
      next.textContent = "paused";
    } else {
      setTime(next, job.nextRunAt);
    }

    this.fillResult(resultCell.querySelector(".result"), job);
    fillStrip(stripCell.querySelector(".strip"), job.recentRuns ?? []);
    this.fillActions(actionCell, job);
  }

  fillResult(node, job) {
    const execution = job.lastExecution;
    const { tone, label, detail } = summarize(execution, job);
    node.dataset.tone = tone;

    const heading = element("span", "result-label", label);
    const when = execution ? executionTime(execution) : null;
    if (when) {
      const time = element("time", "result-time");
      setTime(time, when);
      heading.append(" ", time);
    }
    node.replaceChildren(heading);
    if (detail) {
      node.append(element("span", "result-detail", detail));
    }

    // The full result is one hover away when the preview had to cut it.
    const full = execution?.result != null ? JSON.stringify(execution.result) : "";
    node.title = full.length > PREVIEW_LENGTH ? full : detail;
  }

  fillActions(node, job) {
    const [toggle, trigger, history, remove] = node.querySelectorAll("button");
    const paused = job.state === "PAUSED";
    toggle.dataset.action = paused ? "resume" : "pause";
    toggle.textContent = paused ? "Resume" : "Pause";
    toggle.hidden = job.state === "COMPLETED";

    markMutating(node);
    toggle.setAttribute("aria-label", `${toggle.textContent} ${job.name}`);
    trigger.setAttribute("aria-label", `Run ${job.name} now`);
    history.setAttribute("aria-label", `Details of ${job.name}`);
    remove.setAttribute("aria-label", `Delete ${job.name}`);
  }
}

// The Tickwork page: wires the jobs table, the new-job form and the live
// connection together. Nothing here reloads the page.

import {
  ApiError,
  CANCEL_EXECUTION,
  CREATE_JOB,
  CREATE_TEST_JOB,
  DELETE_JOB,
  JOB,
  JOB_HISTORY,
  JOBS,
  PAUSE_JOB,
  PREVIEW_SCHEDULE,
  RESUME_JOB,
  TRIGGER_JOB,
  isOlderServer,
  request,
} from "./graphql.js";
import { JobForm } from "./job-form.js";
import { JobHistory } from "./job-history.js";
import { FINAL_STATUSES, JobsTable } from "./jobs-table.js";
import { startLiveUpdates } from "./live.js";

// Stop following pages here: a list this long wants a search, not a table.
const MAX_PAGES = 20;

// Successes fade after this long; failures stay until the next message.
const NOTICE_MS = 8000;

// A finished run may move the job's next run or state; re-read the job this
// long after the event, so a burst of events costs one request.
const JOB_REFRESH_DELAY_MS = 300;

const LIVE_LABELS = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
};

const byId = (id) => document.getElementById(id);

function reasonOf(error) {
  return error instanceof ApiError ? error.message : String(error);
}

let noticeTimer = null;

function notify(text, tone = "ok") {
  const notice = byId("notice");
  clearTimeout(noticeTimer);
  notice.textContent = text;
  notice.dataset.tone = tone;
  notice.hidden = !text;
  if (tone === "ok") {
    noticeTimer = setTimeout(() => notify(""), NOTICE_MS);
  }
}

function setListStatus(text) {
  const status = byId("jobs-status");
  status.textContent = text;
  status.hidden = !text;
}

function setLive(state) {
  const indicator = byId("live");
  if (indicator.dataset.state !== state) {
    indicator.dataset.state = state;
    indicator.textContent = LIVE_LABELS[state];
  }
}

const table = new JobsTable({
  body: byId("jobs-body"),
  empty: byId("jobs-empty"),
  onAction: runAction,
});

async function readAllJobs() {
  const jobs = [];
  let after = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const { jobs: connection } = await request(JOBS, { after });
    jobs.push(...connection.edges.map((edge) => edge.node));
    if (!connection.pageInfo.hasNextPage) {
      break;
    }
    after = connection.pageInfo.endCursor;
  }
  return jobs;
}

// Reads overlap when a reconnect and a mutation ask at once. Callers during a
// read share it, plus one more read afterwards so they see their own change.
let reading = null;
let readAgain = false;

function refreshJobs() {
  if (reading) {
    readAgain = true;
    return reading;
  }
  reading = (async () => {
    try {
      do {
        readAgain = false;
        table.setJobs(await readAllJobs());
        setListStatus("");
      } while (readAgain);
    } catch (error) {
      setListStatus(`Could not load the jobs: ${reasonOf(error)}.`);
    } finally {
      reading = null;
    }
  })();
  return reading;
}

// The history views opened so far, by job id; a closed one is kept and
// re-read when it opens again.
const histories = new Map();

/** Re-read a job with its history into its row and its open history view. */
async function refreshHistory(id) {
  const view = histories.get(id);
  const isNewest = view.begin();
  try {
    const { job } = await request(JOB_HISTORY, { id });
    if (!isNewest()) {
      return;
    }
    if (job) {
      table.upsert(job);
      view.show(job);
    } else {
      table.remove(id);
      histories.delete(id);
    }
  } catch (error) {
    if (isNewest()) {
      const reason = isOlderServer(error)
        ? "this server does not offer it yet"
        : reasonOf(error).replace(/\.$/, "");
      view.setStatus(`Could not load the history: ${reason}.`, "bad");
    }
  }
}

function toggleHistory(job) {
  if (table.isExpanded(job.id)) {
    table.setExpanded(job.id, null);
    return;
  }
  if (!histories.has(job.id)) {
    histories.set(job.id, new JobHistory(job.id));
  }
  table.setExpanded(job.id, histories.get(job.id).node);
  refreshHistory(job.id);
}

const jobRefreshTimers = new Map();

function refreshJobSoon(id) {
  if (jobRefreshTimers.has(id)) {
    return;
  }
  const timer = setTimeout(async () => {
    jobRefreshTimers.delete(id);
    if (table.isExpanded(id)) {
      await refreshHistory(id);
      return;
    }
    try {
      const { job } = await request(JOB, { id });
      if (job) {
        table.upsert(job);
      } else {
        table.remove(id);
      }
    } catch (error) {
      setListStatus(`Could not refresh a job: ${reasonOf(error)}.`);
    }
  }, JOB_REFRESH_DELAY_MS);
  jobRefreshTimers.set(id, timer);
}

function onExecution(execution) {
  const known = table.applyExecution(execution);
  // An open history shows every step of every run, so any event re-reads it.
  const refresh =
    !known ||
    FINAL_STATUSES.has(execution.status) ||
    table.isExpanded(execution.jobId);
  if (refresh) {
    refreshJobSoon(execution.jobId);
  }
}

/** Show a JobResult; true when it was a job. */
function showJobResult(result, success) {
  if (result.__typename === "Job") {
    table.upsert(result);
    notify(success(result));
    return true;
  }
  notify(result.message, "bad");
  return false;
}

const busy = new Set();

async function runAction(action, job, button) {
  if (action === "history") {
    toggleHistory(job);
    return;
  }
  if (busy.has(button)) {
    return;
  }
  if (action === "delete" && !window.confirm(`Delete the job “${job.name}”?`)) {
    return;
  }

  busy.add(button);
  button.setAttribute("aria-busy", "true");
  try {
    await ACTIONS[action](job, button);
  } catch (error) {
    const verb = { trigger: "run", cancel: "cancel a run of" }[action] ?? action;
    notify(`Could not ${verb} “${job.name}”: ${reasonOf(error)}.`, "bad");
  } finally {
    busy.delete(button);
    button.removeAttribute("aria-busy");
  }
  // Pausing moves no execution, so no live event would re-read the history.
  if (table.isExpanded(job.id)) {
    refreshHistory(job.id);
  }
  await refreshJobs();
}

const ACTIONS = {
  async pause(job) {
    const { pauseJob } = await request(PAUSE_JOB, { id: job.id });
    showJobResult(pauseJob, (paused) => `Paused “${paused.name}”.`);
  },

  async resume(job) {
    const { resumeJob } = await request(RESUME_JOB, { id: job.id });
    showJobResult(resumeJob, (resumed) => `Resumed “${resumed.name}”.`);
  },

  async trigger(job) {
    const { triggerJob } = await request(TRIGGER_JOB, { id: job.id });
    if (triggerJob.__typename === "Execution") {
      table.applyExecution(triggerJob);
      notify(`Started a run of “${job.name}”.`);
    } else {
      notify(triggerJob.message, "bad");
    }
  },

  async cancel(job, button) {
    const { cancelExecution: result } = await request(CANCEL_EXECUTION, {
      id: button.dataset.executionId,
    });
    if (result.__typename === "Execution") {
      table.applyExecution(result);
      notify(`Cancelled a run of “${job.name}”.`);
    } else {
      // Already final: the run ended before the cancel reached it.
      notify(result.errors?.[0]?.message ?? result.message, "bad");
    }
  },

  async delete(job) {
    const { deleteJob } = await request(DELETE_JOB, { id: job.id });
    if (deleteJob.__typename === "Deleted") {
      notify(`Deleted “${job.name}”.`);
    } else {
      notify(deleteJob.message, "bad");
    }

    // The row and its focused button are gone either way; keep keyboard
    // users in the table rather than at the top of the page.
    table.remove(job.id);
    histories.delete(job.id);
    byId("jobs-heading").focus();
  },
};

async function createTestJob(event) {
  const button = event.currentTarget;
  if (busy.has(button)) {
    return;
  }
  busy.add(button);
  button.setAttribute("aria-busy", "true");
  try {
    const { createTestJob: result } = await request(CREATE_TEST_JOB);
    showJobResult(result, (job) => `Created the test job “${job.name}”.`);
  } catch (error) {
    notify(`Could not create a test job: ${reasonOf(error)}.`, "bad");
  } finally {
    busy.delete(button);
    button.removeAttribute("aria-busy");
  }
  await refreshJobs();
}

new JobForm({
  form: byId("create-form"),
  message: byId("form-message"),
  timeZoneList: byId("time-zones"),
  preview: byId("schedule-preview"),
  previewSchedule: async (schedule) => {
    const { previewSchedule } = await request(PREVIEW_SCHEDULE, { schedule });
    return previewSchedule;
  },
  createJob: async (input) => {
    try {
      const { createJob } = await request(CREATE_JOB, { input });
      if (createJob.__typename === "Job") {
        table.upsert(createJob);
      }
      return createJob;
    } finally {
      refreshJobs();
    }
  },
});

byId("test-job").addEventListener("click", createTestJob);

setListStatus("Loading jobs…");
refreshJobs();

setLive("connecting");
startLiveUpdates({
  onExecution,
  // Events sent while the socket was down are lost; re-read the list.
  onConnected: () => {
    setLive("live");
    refreshJobs();
    for (const id of histories.keys()) {
      if (table.isExpanded(id)) {
        refreshHistory(id);
      }
    }
  },
  onDisconnected: () => setLive("reconnecting"),
  onProblem: (message) => notify(`Live updates: ${message}`, "bad"),
});

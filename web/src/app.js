// The Tickwork console: wires the session (sign-in, open mode, read-only), the
// jobs table with its filters and details, the job form, the daemons and the
// live connection together. Nothing here reloads the page.

import { READ_ONLY_REASON, setReadOnly } from "./access.js";
import { Daemons } from "./daemons.js";
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
  RETRY_EXECUTION,
  ROTATE_SIGNING_SECRET,
  TRIGGER_JOB,
  UPDATE_JOB,
  isOlderServer,
  readSession,
  request,
  signIn,
  signOut,
  whenUnauthenticated,
} from "./graphql.js";
import { JobForm } from "./job-form.js";
import { JobHistory } from "./job-history.js";
import { FINAL_STATUSES, JobsTable } from "./jobs-table.js";
import { startLiveUpdates } from "./live.js";

// Jobs read per page; the server filters and pages, so 10,000 jobs cost no
// more to show than 25.
const PAGE_SIZE = 25;

// A refresh re-reads at most this many pages: what the user opened so far.
const MAX_PAGES = 20;

const FIRST_JOBS_MARK = "tickwork:first-jobs-shown";

// Wait this long after the last keystroke in the name filter.
const FILTER_DEBOUNCE_MS = 250;

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

function setListStatus(text, tone = "bad") {
  const status = byId("jobs-status");
  status.textContent = text;
  status.dataset.tone = tone;
  status.hidden = !text;
}

function setLive(state, text = LIVE_LABELS[state]) {
  const indicator = byId("live");
  if (indicator.dataset.state !== state || indicator.textContent !== text) {
    indicator.dataset.state = state;
    indicator.textContent = text;
  }
}

/** The socket dropped: say so, and when the next try is, if known. */
function showDisconnected(waitMs) {
  const text =
    waitMs == null
      ? "disconnected — reconnecting…"
      : `disconnected — reconnecting in ${Math.max(1, Math.round(waitMs / 1000))} s`;
  setLive("reconnecting", text);
}

const table = new JobsTable({
  body: byId("jobs-body"),
  empty: byId("jobs-empty"),
  onAction: runAction,
});

// How many pages the user has asked for ("Show more jobs"), and whether the
// server has more after them.
let pagesShown = 1;
let hasMore = false;

function currentFilters() {
  const form = byId("filters");
  const name = form.elements.name.value.trim();
  const state = form.elements.state.value;
  return { name: name || null, state: state || null };
}

/** The jobs of the pages shown so far, under the current filters. */
async function readShownJobs() {
  const jobs = [];
  const filters = currentFilters();
  let after = null;
  hasMore = false;
  for (let page = 0; page < Math.min(pagesShown, MAX_PAGES); page += 1) {
    const { jobs: connection } = await request(JOBS, {
      ...filters,
      first: PAGE_SIZE,
      after,
    });
    jobs.push(...connection.edges.map((edge) => edge.node));
    hasMore = connection.pageInfo.hasNextPage;
    if (!hasMore) {
      break;
    }
    after = connection.pageInfo.endCursor;
  }
  return jobs;
}

function showCount(count) {
  const filtered = Object.values(currentFilters()).some(Boolean);
  const noun = count === 1 ? "job" : "jobs";
  const more = hasMore ? " (more on request)" : "";
  byId("jobs-count").textContent = filtered
    ? `${count} matching ${noun} shown${more}`
    : `${count} ${noun} shown${more}`;
  byId("load-more").hidden = !hasMore || pagesShown >= MAX_PAGES;
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
        const jobs = await readShownJobs();
        table.setJobs(jobs);
        showCount(jobs.length);
        setListStatus("");
        // How long the first jobs took to show, for the browser's tools
        // (performance.getEntriesByName) and the tests.
        if (performance.getEntriesByName(FIRST_JOBS_MARK).length === 0) {
          performance.mark(FIRST_JOBS_MARK);
        }
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

// A run of a job the table does not show: a job made elsewhere, or one the
// filters or pages leave out. Only a list read can tell which, so a burst of
// them costs one read.
const UNKNOWN_JOB_DELAY_MS = 2000;
let listRefreshTimer = null;

function refreshListSoon() {
  listRefreshTimer ??= setTimeout(() => {
    listRefreshTimer = null;
    refreshJobs();
  }, UNKNOWN_JOB_DELAY_MS);
}

function refreshJobSoon(id) {
  if (jobRefreshTimers.has(id)) {
    return;
  }
  if (!table.jobs.has(id)) {
    refreshListSoon();
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
  if (button.dataset.mutates !== undefined && !canWrite()) {
    notify(readOnlyReason(), "bad");
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
    const verb =
      {
        trigger: "run",
        cancel: "cancel a run of",
        retry: "retry a run of",
      }[action] ?? action;
    notify(`Could not ${verb} “${job.name}”: ${explain(error)}.`, "bad");
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

  async retry(job, button) {
    const { retryExecution: result } = await request(RETRY_EXECUTION, {
      id: button.dataset.executionId,
    });
    if (result.__typename === "Execution") {
      table.applyExecution(result);
      notify(`Retrying a run of “${job.name}”.`);
    } else {
      notify(result.errors?.[0]?.message ?? result.message, "bad");
    }
  },

  async rotate(job) {
    const { rotateSigningSecret: result } = await request(ROTATE_SIGNING_SECRET, {
      id: job.id,
    });
    if (result.__typename === "Job") {
      table.upsert(result);
      histories.get(job.id)?.showSecret(result.signingSecret);
      notify(`Rotated the signing secret of “${job.name}”.`);
    } else {
      notify(result.errors?.[0]?.message ?? result.message, "bad");
    }
  },

  async edit(job) {
    const { job: full } = await request(JOB_HISTORY, { id: job.id });
    if (!full) {
      notify(`“${job.name}” no longer exists.`, "bad");
      return;
    }
    form.edit(full);
    byId("create-heading").scrollIntoView({ block: "start" });
    byId("job-name").focus();
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
  if (!canWrite()) {
    notify(readOnlyReason(), "bad");
    return;
  }
  busy.add(button);
  button.setAttribute("aria-busy", "true");
  try {
    const { createTestJob: result } = await request(CREATE_TEST_JOB);
    showJobResult(result, (job) => `Created the test job “${job.name}”.`);
  } catch (error) {
    notify(`Could not create a test job: ${explain(error)}.`, "bad");
  } finally {
    busy.delete(button);
    button.removeAttribute("aria-busy");
  }
  await refreshJobs();
}

const form = new JobForm({
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
  updateJob: async (id, input) => {
    try {
      const { updateJob } = await request(UPDATE_JOB, { id, input });
      if (updateJob.__typename === "Job") {
        table.upsert(updateJob);
        if (table.isExpanded(id)) {
          refreshHistory(id);
        }
      }
      return updateJob;
    } finally {
      refreshJobs();
    }
  },
  onModeChange: (job) => {
    byId("create-heading").textContent = job ? "Edit job" : "New job";
    byId("editing").hidden = !job;
    byId("editing-name").textContent = job?.name ?? "";
    byId("form-submit").textContent = job ? "Save changes" : "Create job";
    byId("form-cancel").hidden = !job;
  },
});

byId("form-cancel").addEventListener("click", () => {
  const id = form.editing?.id;
  form.stopEditing();
  // Back to the job the user came from, for keyboard users.
  const row = id && document.querySelector(`tr[data-job-id="${id}"] button[data-action="history"]`);
  (row || byId("create-heading")).focus();
});

byId("test-job").addEventListener("click", createTestJob);

// Filters: the server filters, so each change re-reads the first page.
let filterTimer = null;
function filtersChanged() {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => {
    pagesShown = 1;
    refreshJobs();
  }, FILTER_DEBOUNCE_MS);
}
byId("filters").addEventListener("input", filtersChanged);
byId("filters").addEventListener("submit", (event) => event.preventDefault());
byId("load-more").addEventListener("click", () => {
  pagesShown += 1;
  refreshJobs();
});

const daemons = new Daemons({
  body: byId("daemons-body"),
  empty: byId("daemons-empty"),
  status: byId("daemons-status"),
});

// ---- The session: sign-in, the open-mode banner, read-only sessions ----

let session = null;

function canWrite() {
  return !session || session.open || session.scope === "write";
}

function readOnlyReason() {
  return READ_ONLY_REASON;
}

/** An error's reason, saying plainly when the session may not do it. */
function explain(error) {
  if (error instanceof ApiError && error.code === "FORBIDDEN") {
    return "not allowed: this session is read-only";
  }
  return reasonOf(error).replace(/\.$/, "");
}

function showSession() {
  const banner = byId("auth-banner");
  const readOnly = !canWrite();
  if (session.open) {
    banner.textContent = "Authentication is off — local development: anyone who can reach this server can change jobs.";
    banner.dataset.tone = "warn";
  } else if (readOnly) {
    banner.textContent = "Read-only session: you can watch jobs but not change them.";
    banner.dataset.tone = "info";
  }
  banner.hidden = !(session.open || readOnly);

  // Open mode's caller has no name; a token signed in anyway has one, and
  // signing out of it is real.
  const openCaller = session.open && !session.name;
  byId("session").hidden = !session.authenticated;
  byId("sign-out").hidden = openCaller;
  if (openCaller) {
    byId("session-name").textContent = "Open: no token needed (tickwork up on this machine)";
  } else {
    byId("session-name").textContent = session.authenticated
      ? `Signed in${session.name ? ` as ${session.name}` : ""} (${session.scope})`
      : "";
  }

  setReadOnly(readOnly);
}

function showSignIn(message = "") {
  byId("console").hidden = true;
  byId("sign-in").hidden = false;
  byId("session").hidden = true;
  // Nothing is live and the sections are out of reach until signed in.
  byId("live").hidden = true;
  byId("sections").hidden = true;
  const error = byId("sign-in-error");
  error.textContent = message;
  error.hidden = !message;
  byId("token").focus();
}

let started = false;
let live = null;

function startConsole() {
  byId("sign-in").hidden = true;
  byId("console").hidden = false;
  byId("live").hidden = false;
  byId("sections").hidden = false;
  showSession();
  setListStatus("Loading jobs…", "muted");
  // The daemons and the form's preview wait for the first page of jobs,
  // which matters more.
  refreshJobs().then(() => {
    daemons.start();
    form.updatePreview();
  });
  if (started) {
    setLive("connecting");
    live?.restart();
    return;
  }
  started = true;

  setLive("connecting");
  live = startLiveUpdates({
    onExecution,
    // Events sent while the socket was down are lost; re-read the list.
    onConnected: () => {
      setLive("live");
      refreshJobs();
      daemons.refresh();
      for (const id of histories.keys()) {
        if (table.isExpanded(id)) {
          refreshHistory(id);
        }
      }
    },
    onDisconnected: showDisconnected,
    onProblem: (message) => notify(`Live updates: ${message}`, "bad"),
    onUnauthorized: () => checkSession(),
  });
}

async function checkSession() {
  try {
    session = await readSession();
  } catch (error) {
    setListStatus(`Could not read the session: ${reasonOf(error)}.`);
    session = { open: false, authenticated: false, scope: null, name: null };
  }
  if (session.open || session.authenticated) {
    startConsole();
  } else {
    live?.stop();
    daemons.stop();
    showSignIn();
  }
}

whenUnauthenticated(() => {
  if (session && !session.open) {
    checkSession();
  }
});

byId("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = byId("token");
  const button = event.currentTarget.querySelector("button[type=submit]");
  if (button.getAttribute("aria-busy") === "true") {
    return;
  }
  button.setAttribute("aria-busy", "true");
  try {
    await signIn(input.value.trim());
    input.value = "";
    await checkSession();
    byId("jobs-heading").focus();
  } catch (error) {
    const reason = reasonOf(error).replace(/\.$/, "");
    showSignIn(`Not signed in: ${reason}.`);
    input.setAttribute("aria-invalid", "true");
  } finally {
    button.removeAttribute("aria-busy");
  }
});

byId("sign-out").addEventListener("click", async () => {
  // Stop asking first, and let reads under way finish, so that nothing asks
  // without the session once it is gone.
  live?.stop();
  daemons.stop();
  for (const timer of jobRefreshTimers.values()) {
    clearTimeout(timer);
  }
  jobRefreshTimers.clear();
  clearTimeout(listRefreshTimer);
  listRefreshTimer = null;
  await Promise.all([reading, daemons.reading]);
  try {
    await signOut();
  } catch (error) {
    notify(`Could not sign out: ${reasonOf(error)}.`, "bad");
  }
  await checkSession();
});

checkSession();

// The "new job" form: reads a CreateJobInput and shows errors next to the
// fields they name.
//
// Every element with data-field="<input path>" gets an error line. Paths are
// the API's dotted input paths, such as "schedule.cron.expression".

import { READ_ONLY_REASON, isReadOnly } from "./access.js";
import { ApiError } from "./graphql.js";
import { SchedulePreview } from "./schedule-preview.js";

// The policy fields sent as numbers; an empty one is left out.
const POLICY_NUMBERS = [
  "catchUpLimit",
  "misfireGraceSeconds",
  "maxInFlight",
  "jitterSeconds",
  "pauseAfterFailures",
  "retryBaseSeconds",
  "retryMaxSeconds",
  "keepExecutions",
];

// Policies whose default is null: an emptied field sends null on an edit,
// which sets them back to the default.
const NULLABLE_POLICIES = new Set([
  "pauseAfterFailures",
  "retryBaseSeconds",
  "retryMaxSeconds",
  "keepExecutions",
  "alertUrl",
]);

/** An ISO instant as a datetime-local value in this browser's time zone. */
function localInputValue(iso) {
  if (!iso) {
    return "";
  }
  const date = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** A datetime-local value as an ISO instant, or null when empty. */
function instantOf(control, field, message) {
  if (!control.value) {
    return null;
  }
  const date = new Date(control.value);
  if (Number.isNaN(date.getTime())) {
    throw new FieldErrors([{ field, message }]);
  }
  return date.toISOString();
}

// The policy fields chosen from a list; one left at its first selection is
// left out, so the API's default applies.
const POLICY_CHOICES = ["catchUp", "overlap"];

function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

function timeZones() {
  const zones =
    typeof Intl.supportedValuesOf === "function"
      ? Intl.supportedValuesOf("timeZone")
      : [];
  return zones.includes("UTC") ? zones : ["UTC", ...zones];
}

function errorId(field) {
  return `error-${field.replaceAll(".", "-")}`;
}

function describedBy(control, add, remove) {
  const ids = (control.getAttribute("aria-describedby") ?? "")
    .split(/\s+/)
    .filter((id) => id && id !== remove);
  if (add) {
    ids.push(add);
  }
  if (ids.length > 0) {
    control.setAttribute("aria-describedby", ids.join(" "));
  } else {
    control.removeAttribute("aria-describedby");
  }
}

/** A problem found before sending, in the API's FieldError shape. */
class FieldErrors extends Error {
  constructor(errors) {
    super(errors.map((error) => error.message).join("; "));
    this.errors = errors;
  }
}

export class JobForm {
  /**
   * `createJob(input)` sends the mutation and resolves to its JobResult, or
   * throws an ApiError; `previewSchedule(schedule)` likewise resolves to a
   * SchedulePreviewResult.
   */
  constructor({
    form,
    message,
    timeZoneList,
    preview,
    createJob,
    updateJob,
    previewSchedule,
    onModeChange = () => {},
  }) {
    this.form = form;
    this.message = message;
    this.createJob = createJob;
    this.updateJob = updateJob;
    this.onModeChange = onModeChange;
    this.fields = new Map();
    this.busy = false;
    // The job being edited, or null while the form creates a new one.
    this.editing = null;

    for (const container of form.querySelectorAll("[data-field]")) {
      const field = container.dataset.field;
      const error = document.createElement("p");
      error.className = "field-error";
      error.id = errorId(field);
      error.hidden = true;
      container.append(error);
      this.fields.set(field, { container, error });
    }

    const timeZone = form.elements.timezone;
    timeZone.defaultValue = browserTimeZone();
    timeZone.value = timeZone.defaultValue;
    timeZoneList.replaceChildren(
      ...timeZones().map((zone) => new Option(zone)),
    );

    this.preview = new SchedulePreview({
      node: preview,
      fetchPreview: previewSchedule,
      showErrors: (errors) => this.showScheduleErrors(errors),
    });
    const schedule = form.querySelector('[data-field="schedule"]');

    form.addEventListener("change", (event) => {
      if (event.target.type === "radio") {
        this.syncPanels();
      }
      if (event.target.tagName === "SELECT") {
        this.syncHints();
      }
    });
    form.addEventListener("input", (event) => {
      const container = event.target.closest("[data-field]");
      if (container) {
        this.clearError(container.dataset.field);
      }
      if (schedule.contains(event.target)) {
        this.updatePreview();
      }
    });
    // The browser cannot point at a bad field inside closed details.
    form.addEventListener(
      "invalid",
      (event) => {
        const details = event.target.closest("details");
        if (details) {
          details.open = true;
        }
      },
      true,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });

    // The preview asks the API, so it waits for the page to be signed in:
    // the page calls updatePreview() then.
    this.syncPanels();
    this.syncHints();
  }

  /** Show the hint of each list's chosen option only. */
  syncHints() {
    for (const hint of this.form.querySelectorAll("[data-hint-for]")) {
      const value = this.form.elements[hint.dataset.hintFor].value;
      for (const line of hint.querySelectorAll("[data-value]")) {
        line.hidden = line.dataset.value !== value;
      }
    }
  }

  updatePreview() {
    this.preview.update(() => {
      try {
        return this.readBoundedSchedule();
      } catch (error) {
        if (error instanceof FieldErrors) {
          return null;
        }
        throw error;
      }
    });
  }

  /**
   * Show the preview's errors beside the schedule fields, replacing the ones
   * shown before; return the messages that name no field on the form.
   */
  showScheduleErrors(errors) {
    for (const field of this.fields.keys()) {
      if (field.startsWith("schedule")) {
        this.clearError(field);
      }
    }

    const unplaced = [];
    for (const { field, message } of errors) {
      const target = this.closestField(field);
      if (target) {
        this.showError(target, message);
      } else {
        unplaced.push(message);
      }
    }
    return unplaced;
  }

  /** Show only the panels of the chosen schedule and action kinds. */
  syncPanels() {
    const chosen = new Set([
      this.form.elements.scheduleKind.value,
      this.form.elements.actionKind.value,
    ]);

    // A disabled fieldset takes its inputs out of the browser's validation,
    // so a required field in a hidden panel cannot block the submit.
    for (const panel of this.form.querySelectorAll("fieldset[data-kind]")) {
      const shown = chosen.has(panel.dataset.kind);
      panel.hidden = !shown;
      panel.disabled = !shown;
    }
  }

  /** The ScheduleInput the fields describe, or FieldErrors. */
  readSchedule() {
    const elements = this.form.elements;
    const scheduleKind = elements.scheduleKind.value;

    if (scheduleKind === "interval") {
      const seconds = elements.intervalSeconds.valueAsNumber;
      if (!Number.isFinite(seconds)) {
        throw new FieldErrors([
          { field: "schedule.intervalSeconds", message: "Enter a number." },
        ]);
      }
      return { intervalSeconds: seconds };
    }

    if (scheduleKind === "cron") {
      const expression = elements.cronExpression.value.trim();
      if (!expression) {
        throw new FieldErrors([
          {
            field: "schedule.cron.expression",
            message: "Enter a cron expression.",
          },
        ]);
      }
      const timezone = elements.timezone.value.trim() || "UTC";
      return { cron: { expression, timezone } };
    }

    const at = new Date(elements.at.value);
    if (Number.isNaN(at.getTime())) {
      throw new FieldErrors([
        { field: "schedule.at", message: "Enter a date and time." },
      ]);
    }
    return { at: at.toISOString() };
  }

  /** The schedule with its optional bounds. */
  readBoundedSchedule() {
    const schedule = this.readSchedule();
    const elements = this.form.elements;
    const startAt = instantOf(
      elements.startAt,
      "schedule.startAt",
      "Enter a date and time.",
    );
    const endAt = instantOf(elements.endAt, "schedule.endAt", "Enter a date and time.");
    if (startAt) {
      schedule.startAt = startAt;
    }
    if (endAt) {
      schedule.endAt = endAt;
    }
    return schedule;
  }

  /** The PoliciesInput, or null when every policy is left at its default. */
  readPolicies() {
    const elements = this.form.elements;
    const policies = {};

    for (const name of POLICY_CHOICES) {
      const select = elements[name];
      const initial = [...select.options].find((option) => option.defaultSelected);
      if (this.editing || select.value !== initial?.value) {
        policies[name] = select.value;
      }
    }
    for (const name of POLICY_NUMBERS) {
      const value = elements[name].valueAsNumber;
      if (Number.isFinite(value)) {
        policies[name] = value;
      } else if (this.editing && NULLABLE_POLICIES.has(name)) {
        policies[name] = null;
      }
    }
    const alertUrl = elements.alertUrl.value.trim();
    if (alertUrl) {
      policies.alertUrl = alertUrl;
    } else if (this.editing) {
      policies.alertUrl = null;
    }
    return Object.keys(policies).length > 0 ? policies : null;
  }

  readHeaders(control, field) {
    const text = this.form.elements[control].value.trim();
    if (!text) {
      return null;
    }
    let headers;
    try {
      headers = JSON.parse(text);
    } catch (error) {
      throw new FieldErrors([
        { field, message: `Not valid JSON: ${error.message}` },
      ]);
    }
    if (headers === null || typeof headers !== "object" || Array.isArray(headers)) {
      throw new FieldErrors([
        {
          field,
          message: 'Write an object of names and values, like {"X-Team": "ops"}.',
        },
      ]);
    }
    return headers;
  }

  read() {
    const elements = this.form.elements;
    const input = { name: elements.jobName.value.trim() };
    const key = elements.jobKey.value.trim();
    if (key && !this.editing) {
      input.key = key;
    }
    // Every problem found here is shown at once, not one per submit.
    const problems = [];
    const collect = (read) => {
      try {
        return read();
      } catch (error) {
        if (error instanceof FieldErrors) {
          problems.push(...error.errors);
          return undefined;
        }
        throw error;
      }
    };
    input.schedule = collect(() => this.readBoundedSchedule());

    if (elements.actionKind.value === "webhook") {
      const webhook = {
        url: elements.webhookUrl.value.trim(),
        verifyTls: elements.verifyTls.checked,
        followRedirects: elements.followRedirects.checked,
      };
      const headers = collect(() =>
        this.readHeaders("webhookHeaders", "action.webhook.headers"),
      );
      if (headers) {
        webhook.headers = headers;
      }
      const secretHeaders = collect(() =>
        this.readHeaders("webhookSecretHeaders", "action.webhook.secretHeaders"),
      );
      if (secretHeaders) {
        webhook.secretHeaders = secretHeaders;
      }
      input.action = { webhook };
    } else {
      input.action = { fetch: { url: elements.fetchUrl.value.trim() || null } };
    }

    const payload = elements.payload.value.trim();
    if (payload) {
      try {
        input.payload = JSON.parse(payload);
      } catch (error) {
        problems.push({ field: "payload", message: `Not valid JSON: ${error.message}` });
      }
    } else if (this.editing) {
      input.payload = null;
    }
    // Only a new job takes its signing secret here; rotating changes one.
    const signingSecret = elements.signingSecret.value.trim();
    if (signingSecret && !this.editing && input.action.webhook) {
      input.signingSecret = signingSecret;
    }
    if (problems.length > 0) {
      throw new FieldErrors(problems);
    }

    // Empty number fields are left out so the API's defaults apply.
    const maxRetries = elements.maxRetries.valueAsNumber;
    if (Number.isFinite(maxRetries)) {
      input.maxRetries = maxRetries;
    }
    const timeoutSeconds = elements.timeoutSeconds.valueAsNumber;
    if (Number.isFinite(timeoutSeconds)) {
      input.timeoutSeconds = timeoutSeconds;
    }

    const policies = this.readPolicies();
    if (policies) {
      input.policies = policies;
    }
    return input;
  }

  async submit() {
    // A busy flag rather than a disabled button: disabling the focused
    // button would drop keyboard focus to the page.
    if (this.busy) {
      return;
    }

    this.clearErrors();
    this.showSecret({});
    if (isReadOnly()) {
      this.showMessage(READ_ONLY_REASON, "bad");
      return;
    }
    let input;
    try {
      input = this.read();
    } catch (error) {
      if (error instanceof FieldErrors) {
        this.showErrors(error.errors);
        return;
      }
      throw error;
    }

    this.busy = true;
    this.form.setAttribute("aria-busy", "true");
    const editing = this.editing;
    try {
      const result = editing
        ? await this.updateJob(editing.id, input)
        : await this.createJob(input);
      if (result.__typename === "Job") {
        this.stopEditing();
        this.showSecret(result);
        this.showMessage(
          editing ? `Saved job “${result.name}”.` : `Created job “${result.name}”.`,
          "ok",
        );
      } else if (result.__typename === "InvalidInput") {
        this.showErrors(result.errors, result.message);
      } else {
        this.showMessage(result.message, "bad");
      }
    } catch (error) {
      const reason = error instanceof ApiError ? error.message : String(error);
      const verb = editing ? "save" : "create";
      this.showMessage(`Could not ${verb} the job: ${reason}.`, "bad");
    } finally {
      this.busy = false;
      this.form.removeAttribute("aria-busy");
    }
  }

  /** Show a signing secret made by this save: the only time it is shown. */
  showSecret(job) {
    const box = this.form.querySelector("#signing-secret");
    box.hidden = !job.signingSecret;
    box.querySelector(".secret-job").textContent = job.name;
    box.querySelector(".secret-value").textContent = job.signingSecret ?? "";
  }

  /** Fill the form with a job (as JOB_HISTORY reads it) to change it. */
  edit(job) {
    this.form.reset();
    this.clearErrors();
    this.editing = job;
    const elements = this.form.elements;
    elements.jobName.value = job.name;
    // A key is given when a job is created; it cannot change.
    elements.jobKey.value = job.key ?? "";
    elements.jobKey.readOnly = true;
    elements.signingSecret.disabled = true;

    const schedule = job.schedule;
    const kind = schedule.cron ? "cron" : schedule.at ? "at" : "interval";
    elements.scheduleKind.value = kind;
    if (schedule.cron) {
      elements.cronExpression.value = schedule.cron.expression;
      elements.timezone.value = schedule.cron.timezone;
    } else if (schedule.at) {
      elements.at.value = localInputValue(schedule.at);
    } else {
      elements.intervalSeconds.value = schedule.intervalSeconds;
    }
    elements.startAt.value = localInputValue(schedule.startAt);
    elements.endAt.value = localInputValue(schedule.endAt);

    const webhook = job.action.webhook;
    elements.actionKind.value = webhook ? "webhook" : "fetch";
    if (webhook) {
      elements.webhookUrl.value = webhook.url;
      elements.webhookHeaders.value =
        webhook.headers && Object.keys(webhook.headers).length > 0
          ? JSON.stringify(webhook.headers)
          : "";
      elements.verifyTls.checked = webhook.verifyTls;
      elements.followRedirects.checked = webhook.followRedirects;
    } else {
      elements.fetchUrl.value = job.action.fetch?.url ?? "";
    }
    elements.payload.value =
      job.payload == null ? "" : JSON.stringify(job.payload, null, 2);
    elements.maxRetries.value = job.maxRetries;
    elements.timeoutSeconds.value = job.timeoutSeconds;

    const policies = job.policies;
    for (const name of [...POLICY_CHOICES, ...POLICY_NUMBERS]) {
      elements[name].value = policies[name] ?? "";
    }
    elements.alertUrl.value = policies.alertUrl ?? "";

    this.syncPanels();
    this.syncHints();
    this.updatePreview();
    this.onModeChange(job);
  }

  /** Back to creating jobs, with the form emptied. */
  stopEditing() {
    this.editing = null;
    this.form.elements.jobKey.readOnly = false;
    this.form.elements.signingSecret.disabled = false;
    this.form.reset();
    this.syncPanels();
    this.syncHints();
    this.updatePreview();
    this.onModeChange(null);
  }

  /**
   * Put each error next to its field, or the nearest enclosing one
   * ("action.webhook.headers" falls back to "action"), else in the message.
   */
  showErrors(errors, summary = "") {
    const unplaced = [];
    let first = null;

    for (const { field, message } of errors) {
      const target = this.closestField(field);
      if (!target) {
        unplaced.push(message);
        continue;
      }
      this.showError(target, message);
      first ??= target;
    }

    if (unplaced.length > 0 || errors.length === 0) {
      const text = unplaced.length > 0 ? unplaced.join(" ") : summary;
      this.showMessage(text || "The job was not created.", "bad");
    }
    // A fieldset-level error focuses its chosen radio button, a field-level
    // one its input; closed policies open first, or focus would go nowhere.
    if (first) {
      const { container } = this.fields.get(first);
      const details = container.closest("details");
      if (details) {
        details.open = true;
      }
      container
        .querySelector("input:checked, input:enabled, select, textarea")
        ?.focus();
    }
  }

  closestField(field) {
    const parts = field.split(".");
    while (parts.length > 0) {
      const candidate = parts.join(".");
      const entry = this.fields.get(candidate);
      if (entry && !entry.container.closest("[hidden]")) {
        return candidate;
      }
      parts.pop();
    }
    return null;
  }

  showError(field, message) {
    const { container, error } = this.fields.get(field);
    error.textContent = error.hidden ? message : `${error.textContent} ${message}`;
    error.hidden = false;
    for (const control of container.querySelectorAll("input, select, textarea")) {
      if (control.closest("[data-field]") === container) {
        control.setAttribute("aria-invalid", "true");
        describedBy(control, error.id, error.id);
      }
    }
  }

  clearError(field) {
    const entry = this.fields.get(field);
    if (!entry || entry.error.hidden) {
      return;
    }
    entry.error.hidden = true;
    entry.error.textContent = "";
    for (const control of entry.container.querySelectorAll("[aria-invalid]")) {
      control.removeAttribute("aria-invalid");
      describedBy(control, null, entry.error.id);
    }
  }

  clearErrors() {
    for (const field of this.fields.keys()) {
      this.clearError(field);
    }
    this.showMessage("", "");
  }

  showMessage(text, tone) {
    this.message.textContent = text;
    this.message.dataset.tone = tone;
    this.message.hidden = !text;
  }
}

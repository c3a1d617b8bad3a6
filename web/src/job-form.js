// The "new job" form: reads a CreateJobInput and shows errors next to the
// fields they name.
//
// Every element with data-field="<input path>" gets an error line. Paths are
// the API's dotted input paths, such as "schedule.cron.expression".

import { ApiError } from "./graphql.js";

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
   * throws an ApiError.
   */
  constructor({ form, message, timeZoneList, createJob }) {
    this.form = form;
    this.message = message;
    this.createJob = createJob;
    this.fields = new Map();
    this.busy = false;

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

    form.addEventListener("change", (event) => {
      if (event.target.type === "radio") {
        this.syncPanels();
      }
    });
    form.addEventListener("input", (event) => {
      const container = event.target.closest("[data-field]");
      if (container) {
        this.clearError(container.dataset.field);
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });

    this.syncPanels();
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

  read() {
    const elements = this.form.elements;
    const input = { name: elements.jobName.value.trim() };

    const scheduleKind = elements.scheduleKind.value;
    if (scheduleKind === "interval") {
      input.schedule = { intervalSeconds: elements.intervalSeconds.valueAsNumber };
    } else if (scheduleKind === "cron") {
      input.schedule = {
        cron: {
          expression: elements.cronExpression.value.trim(),
          timezone: elements.timezone.value.trim() || "UTC",
        },
      };
    } else {
      const at = new Date(elements.at.value);
      if (Number.isNaN(at.getTime())) {
        throw new FieldErrors([
          { field: "schedule.at", message: "Enter a date and time." },
        ]);
      }
      input.schedule = { at: at.toISOString() };
    }

    if (elements.actionKind.value === "webhook") {
      input.action = { webhook: { url: elements.webhookUrl.value.trim() } };
    } else {
      input.action = { fetch: { url: elements.fetchUrl.value.trim() || null } };
    }

    const payload = elements.payload.value.trim();
    if (payload) {
      try {
        input.payload = JSON.parse(payload);
      } catch (error) {
        throw new FieldErrors([
          { field: "payload", message: `Not valid JSON: ${error.message}` },
        ]);
      }
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
    return input;
  }

  async submit() {
    // A busy flag rather than a disabled button: disabling the focused
    // button would drop keyboard focus to the page.
    if (this.busy) {
      return;
    }

    this.clearErrors();
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
    try {
      const result = await this.createJob(input);
      if (result.__typename === "Job") {
        this.form.reset();
        this.syncPanels();
        this.showMessage(`Created job “${result.name}”.`, "ok");
      } else if (result.__typename === "InvalidInput") {
        this.showErrors(result.errors, result.message);
      } else {
        this.showMessage(result.message, "bad");
      }
    } catch (error) {
      const reason = error instanceof ApiError ? error.message : String(error);
      this.showMessage(`Could not create the job: ${reason}.`, "bad");
    } finally {
      this.busy = false;
      this.form.removeAttribute("aria-busy");
    }
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
    // one its input.
    if (first) {
      const { container } = this.fields.get(first);
      container.querySelector("input:checked, input:enabled, textarea")?.focus();
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
    for (const control of container.querySelectorAll("input, textarea")) {
      if (control.closest("[data-field]") === container) {
        control.setAttribute("aria-invalid", "true");
        control.setAttribute("aria-describedby", error.id);
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
      control.removeAttribute("aria-describedby");
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

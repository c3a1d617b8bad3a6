// The schedule preview under the form's schedule fieldset: the schedule in
// words and its next fire times, asked of the API while the user types.

import { ApiError, isOlderServer } from "./graphql.js";

// Wait this long after the last keystroke before asking the API.
const DEBOUNCE_MS = 300;

const LOCAL_FORMAT = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

const UTC_FORMAT = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
  timeZone: "UTC",
});

function localZoneName() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "local";
  } catch {
    return "local";
  }
}

function timeCell(tag, iso, text) {
  const cell = document.createElement(tag);
  const time = document.createElement("time");
  time.dateTime = iso;
  time.textContent = text;
  cell.append(time);
  return cell;
}

function noPreview(error) {
  // The form still works without the preview.
  if (isOlderServer(error)) {
    return "This server cannot preview schedules.";
  }
  const reason = error instanceof ApiError ? error.message : String(error);
  return `No preview: ${reason.replace(/\.$/, "")}.`;
}

export class SchedulePreview {
  /**
   * `fetchPreview(schedule)` resolves to a SchedulePreviewResult or throws an
   * ApiError. `showErrors(errors)` places field errors next to their fields
   * (an empty list clears them) and returns the messages it could not place.
   */
  constructor({ node, fetchPreview, showErrors }) {
    this.fetchPreview = fetchPreview;
    this.showErrors = showErrors;
    this.timer = null;
    // Every request takes the next number; only the newest may be shown,
    // so a slow answer to an old expression never replaces a newer one.
    this.latest = 0;

    this.description = node.querySelector(".preview-description");
    this.table = node.querySelector(".preview-times");
    this.times = this.table.querySelector("tbody");
    this.problem = node.querySelector(".preview-problem");
    this.table.querySelector(".preview-local").textContent =
      `Your time (${localZoneName()})`;
  }

  /**
   * Preview the schedule `readSchedule()` returns, after a pause in typing.
   * `readSchedule` returns null while the fields are incomplete.
   */
  update(readSchedule) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(readSchedule()), DEBOUNCE_MS);
  }

  async run(schedule) {
    const ticket = ++this.latest;
    if (schedule === null) {
      this.showErrors([]);
      this.show({ note: "Fill in the schedule to see its next runs." });
      return;
    }

    let result;
    try {
      result = await this.fetchPreview(schedule);
    } catch (error) {
      if (ticket === this.latest) {
        this.showErrors([]);
        this.show({ note: noPreview(error) });
      }
      return;
    }
    if (ticket !== this.latest) {
      return;
    }

    if (result.__typename === "SchedulePreview") {
      this.showErrors([]);
      this.show({ description: result.description, fireTimes: result.fireTimes });
    } else {
      // Errors that name a field sit beside it; the preview says only what
      // it could not place there.
      const errors = result.errors ?? [];
      const unplaced = this.showErrors(errors);
      if (unplaced.length > 0 || errors.length === 0) {
        this.show({ problem: unplaced.join(" ") || result.message });
      } else {
        this.show({ note: "No preview until the schedule is valid." });
      }
    }
  }

  show({ description = "", fireTimes = null, note = "", problem = "" }) {
    this.description.textContent = description;
    this.description.hidden = !description;
    if (fireTimes?.length === 0) {
      note = "No fire times ahead.";
    }
    fireTimes ??= [];

    this.times.replaceChildren(
      ...fireTimes.map((iso) => {
        const date = new Date(iso);
        const row = document.createElement("tr");
        row.append(
          timeCell("td", iso, LOCAL_FORMAT.format(date)),
          timeCell("td", iso, `${UTC_FORMAT.format(date)} UTC`),
        );
        return row;
      }),
    );
    this.table.hidden = fireTimes.length === 0;

    this.problem.textContent = problem || note;
    this.problem.dataset.tone = problem ? "bad" : "muted";
    this.problem.hidden = !(problem || note);
  }
}

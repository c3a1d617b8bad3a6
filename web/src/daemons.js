// The daemons table: which workers are alive, their heartbeats and the runs
// each holds. Daemons do not announce heartbeats live, so it is re-read on a
// timer while the page is visible.

import { ApiError, DAEMONS, request } from "./graphql.js";
import { formatDateTime } from "./jobs-table.js";

const REFRESH_MS = 5000;

// A RUNNING daemon whose heartbeat is older than this is probably gone: the
// lease (30 s by default) runs out about then and others take its runs over.
const SILENT_AFTER_MS = 30_000;

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

function cell(label, ...children) {
  const node = element("td");
  node.dataset.label = label;
  const content = element("div", "cell");
  content.append(...children);
  node.append(content);
  return node;
}

function ago(ms) {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 90) {
    return `${seconds} s ago`;
  }
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) {
    return `${minutes} min ago`;
  }
  return `${Math.round(minutes / 60)} h ago`;
}

function timeNode(iso, text) {
  const node = element("time", "", text);
  node.dateTime = iso;
  node.title = iso;
  return node;
}

/** How a daemon reads: alive, silent (no recent heartbeat), stopped or dead. */
export function liveness(daemon, now) {
  if (daemon.state !== "RUNNING") {
    return daemon.state === "STOPPED"
      ? { tone: "neutral", label: "Stopped" }
      : { tone: "bad", label: "Dead" };
  }
  const age = now - Date.parse(daemon.heartbeatAt);
  return age > SILENT_AFTER_MS
    ? { tone: "warn", label: "Silent" }
    : { tone: "ok", label: "Alive" };
}

export class Daemons {
  constructor({ body, empty, status }) {
    this.body = body;
    this.empty = empty;
    this.status = status;
    this.timer = null;
    this.reading = null;
  }

  start() {
    this.stop();
    this.refresh();
    this.timer = setInterval(() => {
      if (document.visibilityState === "visible") {
        this.refresh();
      }
    }, REFRESH_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  /** Re-read the daemons; `this.reading` is the read under way, if any. */
  refresh() {
    this.reading ??= this.read().finally(() => {
      this.reading = null;
    });
    return this.reading;
  }

  async read() {
    try {
      const { daemons } = await request(DAEMONS);
      this.show(daemons);
      this.setStatus("");
    } catch (error) {
      const reason = error instanceof ApiError ? error.message : String(error);
      this.setStatus(`Could not load the daemons: ${reason.replace(/\.$/, "")}.`);
    }
  }

  setStatus(text) {
    this.status.textContent = text;
    this.status.hidden = !text;
  }

  show(daemons) {
    const now = Date.now();
    // Rebuilt whole: it has no buttons, so no focus to keep.
    this.body.replaceChildren(
      ...daemons.map((daemon) => {
        const row = element("tr");
        row.dataset.daemonId = daemon.id;
        const { tone, label } = liveness(daemon, now);
        row.dataset.liveness = label.toLowerCase();

        const name = element("span", "job-name", `${daemon.hostname} pid ${daemon.pid}`);
        const id = element("span", "job-target", daemon.id);
        const badge = element("span", "run-status", label);
        badge.dataset.tone = tone;
        const heartbeat = timeNode(
          daemon.heartbeatAt,
          `${ago(now - Date.parse(daemon.heartbeatAt))}`,
        );
        const load = element(
          "span",
          "in-flight",
          `${daemon.inFlight} of ${daemon.concurrency}`,
        );
        const meter = element("meter");
        meter.min = 0;
        meter.max = daemon.concurrency;
        meter.value = daemon.inFlight;
        meter.setAttribute("aria-label", `Runs in flight on ${daemon.hostname} pid ${daemon.pid}`);

        row.append(
          cell("Daemon", name, id),
          cell("State", badge),
          cell("Last heartbeat", heartbeat),
          cell("Runs in flight", load, meter),
          cell("Started", timeNode(daemon.startedAt, formatDateTime(daemon.startedAt))),
        );
        return row;
      }),
    );
    this.empty.hidden = daemons.length > 0;
  }
}

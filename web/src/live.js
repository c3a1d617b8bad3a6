// Live execution updates over one WebSocket (graphql-transport-ws protocol).

import { createClient } from "graphql-ws/client";

import { EXECUTION_UPDATES, GRAPHQL_PATH } from "./graphql.js";

// graphql-ws doubles its wait after every failed attempt without a ceiling;
// with endless retries that would leave the page hours behind a server that
// came back, so the wait stops growing here.
const MAX_RETRY_WAIT_MS = 15_000;

// Wait before subscribing again when the server ended or refused the
// subscription itself, as opposed to dropping the connection.
const RESUBSCRIBE_WAIT_MS = 10_000;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function websocketUrl() {
  const url = new URL(GRAPHQL_PATH, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

/**
 * Connect at once and keep connected, calling `onExecution` for every
 * execution event of every job.
 *
 * `onConnected` runs after each (re)connection, so the caller can re-read
 * what it missed while offline; `onDisconnected` runs when the socket closes.
 * `onProblem` receives a message when the subscription itself fails.
 */
export function startLiveUpdates({
  onExecution,
  onConnected,
  onDisconnected,
  onProblem,
  onUnauthorized = () => {},
}) {
  let client = null;
  let stopped = false;

  function connect() {
    client = createClient({
      url: websocketUrl(),
      lazy: false,
      retryAttempts: Infinity,
      // A refused sign-in is not retried: the page asks the user instead.
      shouldRetry: (event) => !isUnauthorized(event),
      retryWait: async (retries) => {
        const wait = Math.min(1000 * 2 ** retries, MAX_RETRY_WAIT_MS);
        const jittered = wait + Math.random() * 1000;
        onDisconnected(jittered);
        await sleep(jittered);
      },
      on: {
        connected: () => onConnected(),
        closed: (event) => {
          if (stopped) {
            return;
          }
          if (isUnauthorized(event)) {
            onUnauthorized();
          } else {
            onDisconnected(null);
          }
        },
      },
    });
    subscribe(client);
  }

  // graphql-ws re-sends the subscription by itself after a reconnect; this
  // loop only covers the server ending it or answering with errors.
  function subscribe(owner) {
    if (stopped || owner !== client) {
      return;
    }
    owner.subscribe(
      { query: EXECUTION_UPDATES },
      {
        next: ({ data, errors }) => {
          if (errors?.length) {
            onProblem(errors.map((error) => error.message).join("; "));
          }
          if (data?.executionUpdates) {
            onExecution(data.executionUpdates);
          }
        },
        error: (error) => {
          if (isUnauthorized(error)) {
            return; // the closed handler asks the user to sign in
          }
          onProblem(describe(error));
          setTimeout(() => subscribe(owner), RESUBSCRIBE_WAIT_MS);
        },
        complete: () => {
          setTimeout(() => subscribe(owner), RESUBSCRIBE_WAIT_MS);
        },
      },
    );
  }

  connect();
  return {
    /** Close the connection for good (signed out). */
    stop() {
      stopped = true;
      client?.dispose();
      client = null;
    },
    /** Connect again, as after signing in. */
    restart() {
      stopped = true;
      client?.dispose();
      stopped = false;
      connect();
    },
  };
}

// 4401: no valid credentials; 4403: refused (a foreign origin or scope).
function isUnauthorized(event) {
  return event && (event.code === 4401 || event.code === 4403);
}

function describe(error) {
  if (Array.isArray(error)) {
    return error.map((item) => item.message).join("; ");
  }
  if (error instanceof Error) {
    return error.message;
  }
  if (error && typeof error.code === "number") {
    const reason = error.reason ? `: ${error.reason}` : "";
    return `connection closed with code ${error.code}${reason}`;
  }
  return "live updates failed";
}

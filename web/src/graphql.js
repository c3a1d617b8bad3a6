// GraphQL over HTTP: one POST per query or mutation, to the same origin.

export const GRAPHQL_PATH = "/graphql";

/**
 * A request that did not give us data: network, HTTP or GraphQL errors.
 * `code` is the first error's extensions.code (such as FORBIDDEN or
 * UNAUTHENTICATED), or "UNAUTHENTICATED" for an HTTP 401.
 */
export class ApiError extends Error {
  constructor(message, code = null) {
    super(message);
    this.code = code;
  }
}

// Called with the ApiError whenever the server says the caller must sign in.
let onUnauthenticated = () => {};

export function whenUnauthenticated(callback) {
  onUnauthenticated = callback;
}

/**
 * Whether the API rejected fields it does not know: a server older than the
 * page. The parts of the page that need those fields say so and step aside.
 */
export function isOlderServer(error) {
  return (
    error instanceof ApiError &&
    /Cannot query field|Unknown (type|argument)/.test(error.message)
  );
}

/** Send one operation and return its `data`, or throw an ApiError. */
export async function request(query, variables = {}) {
  let response;
  try {
    response = await fetch(GRAPHQL_PATH, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError("the server could not be reached");
  }

  // GraphQL errors may come with a 4xx status and a JSON body worth reading,
  // so the status alone decides nothing while the body is JSON.
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`the server answered HTTP ${response.status}`);
  }

  if (Array.isArray(body.errors) && body.errors.length > 0) {
    const code =
      body.errors[0].extensions?.code ??
      (response.status === 401 ? "UNAUTHENTICATED" : null);
    const error = new ApiError(
      body.errors.map((item) => item.message).join("; "),
      code,
    );
    if (code === "UNAUTHENTICATED") {
      onUnauthenticated(error);
    }
    throw error;
  }
  if (!response.ok || body.data == null) {
    const code = response.status === 401 ? "UNAUTHENTICATED" : null;
    const error = new ApiError(`the server answered HTTP ${response.status}`, code);
    if (code) {
      onUnauthenticated(error);
    }
    throw error;
  }
  return body.data;
}

/** The session as GET /auth/session describes it. */
export async function readSession() {
  const response = await fetch("/auth/session", {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (response.status === 404) {
    // A server without authentication: everyone may do everything.
    return { open: true, authenticated: false, scope: "write", name: null, legacy: true };
  }
  if (!response.ok) {
    throw new ApiError(`the server answered HTTP ${response.status}`);
  }
  return response.json();
}

/** Exchange a token for a session cookie; throws an ApiError when refused. */
export async function signIn(token) {
  let response;
  try {
    response = await fetch("/auth/session", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ token }),
    });
  } catch {
    throw new ApiError("the server could not be reached");
  }
  if (response.ok) {
    return;
  }
  let reason = `the server answered HTTP ${response.status}`;
  try {
    reason = (await response.json()).error ?? reason;
  } catch {
    // The status says enough.
  }
  throw new ApiError(reason, response.status === 401 ? "UNAUTHENTICATED" : null);
}

export async function signOut() {
  const response = await fetch("/auth/session", {
    method: "DELETE",
    credentials: "same-origin",
  });
  if (!response.ok && response.status !== 401) {
    throw new ApiError(`the server answered HTTP ${response.status}`);
  }
}

const EXECUTION_FIELDS = `
  fragment ExecutionFields on Execution {
    id
    jobId
    status
    trigger
    attempt
    scheduledFor
    startedAt
    finishedAt
    httpStatus
    result
    error
    reason
    covers
  }
`;

// How many runs the strip beside each job shows.
export const RECENT_RUNS = 12;

const JOB_FIELDS = `
  fragment JobFields on Job {
    id
    name
    state
    stateReason
    nextRunAt
    createdAt
    schedule { description }
    action { webhook { url verifyTls } fetch { url } }
    lastExecution { ...ExecutionFields }
    recentRuns(count: ${RECENT_RUNS}) { id status durationMs startedAt scheduledFor error }
  }
  ${EXECUTION_FIELDS}
`;

// Every mutation that returns a JobResult asks for the same selection, so the
// page can branch on __typename in one place.
const JOB_RESULT = `
  __typename
  ... on Job { ...JobFields }
  ... on InvalidInput { message errors { field message } }
  ... on NotFound { message }
`;

export const JOBS = `
  query Jobs($first: Int, $after: String, $name: String, $state: JobState) {
    jobs(first: $first, after: $after, name: $name, state: $state) {
      edges { node { ...JobFields } }
      pageInfo { hasNextPage endCursor }
    }
  }
  ${JOB_FIELDS}
`;

export const JOB = `
  query Job($id: ID!) {
    job(id: $id) { ...JobFields }
  }
  ${JOB_FIELDS}
`;

// A signing secret is in the response of the mutation that made it, and
// nowhere else.
export const CREATE_JOB = `
  mutation CreateJob($input: CreateJobInput!) {
    createJob(input: $input) { ${JOB_RESULT} ... on Job { signingSecret } }
  }
  ${JOB_FIELDS}
`;

export const ROTATE_SIGNING_SECRET = `
  mutation RotateSigningSecret($id: ID!) {
    rotateSigningSecret(id: $id) { ${JOB_RESULT} ... on Job { signingSecret } }
  }
  ${JOB_FIELDS}
`;

export const CREATE_TEST_JOB = `
  mutation CreateTestJob {
    createTestJob { ${JOB_RESULT} }
  }
  ${JOB_FIELDS}
`;

export const PAUSE_JOB = `
  mutation PauseJob($id: ID!) {
    pauseJob(id: $id) { ${JOB_RESULT} }
  }
  ${JOB_FIELDS}
`;

export const RESUME_JOB = `
  mutation ResumeJob($id: ID!) {
    resumeJob(id: $id) { ${JOB_RESULT} }
  }
  ${JOB_FIELDS}
`;

export const TRIGGER_JOB = `
  mutation TriggerJob($id: ID!) {
    triggerJob(id: $id) {
      __typename
      ... on Execution { ...ExecutionFields }
      ... on InvalidInput { message }
      ... on NotFound { message }
    }
  }
  ${EXECUTION_FIELDS}
`;

export const DELETE_JOB = `
  mutation DeleteJob($id: ID!) {
    deleteJob(id: $id) {
      __typename
      ... on Deleted { id }
      ... on NotFound { message }
    }
  }
`;

const POLICY_FIELDS = `
  catchUp
  catchUpLimit
  misfireGraceSeconds
  overlap
  maxInFlight
  jitterSeconds
  pauseAfterFailures
  retryBaseSeconds
  retryMaxSeconds
  keepExecutions
  alertUrl
`;

export const UPDATE_JOB = `
  mutation UpdateJob($id: ID!, $input: UpdateJobInput!) {
    updateJob(id: $id, input: $input) { ${JOB_RESULT} ... on Job { signingSecret } }
  }
  ${JOB_FIELDS}
`;

export const RETRY_EXECUTION = `
  mutation RetryExecution($id: ID!) {
    retryExecution(id: $id) {
      __typename
      ... on Execution { ...ExecutionFields }
      ... on InvalidInput { message errors { field message } }
      ... on NotFound { message }
    }
  }
  ${EXECUTION_FIELDS}
`;

export const DAEMONS = `
  query Daemons {
    daemons { id hostname pid startedAt heartbeatAt state concurrency inFlight }
  }
`;

// The expanded view of one job: its row's fields, so one read refreshes both,
// and the last 20 executions with what the scheduler decided about each.
export const JOB_HISTORY = `
  query JobHistory($id: ID!) {
    job(id: $id) {
      ...JobFields
      key
      consecutiveFailures
      nextRuns(count: 5)
      payload
      maxRetries
      timeoutSeconds
      schedule {
        description intervalSeconds cron { expression timezone } at startAt endAt
      }
      action {
        webhook { url headers secretHeaderNames verifyTls followRedirects }
        fetch { url }
      }
      previousSigningSecretUntil
      policies { ${POLICY_FIELDS} }
      executions(first: 20) {
        edges {
          node {
            id
            jobId
            status
            trigger
            scheduledFor
            runAt
            startedAt
            finishedAt
            durationMs
            attempt
            httpStatus
            error
            reason
            covers
            result
            attempts { number httpStatus responseExcerpt error outcome }
          }
        }
      }
    }
  }
  ${JOB_FIELDS}
`;

export const PREVIEW_SCHEDULE = `
  query PreviewSchedule($schedule: ScheduleInput!) {
    previewSchedule(schedule: $schedule, count: 5) {
      __typename
      ... on SchedulePreview { description fireTimes }
      ... on InvalidInput { message errors { field message } }
    }
  }
`;

export const CANCEL_EXECUTION = `
  mutation CancelExecution($id: ID!) {
    cancelExecution(id: $id) {
      __typename
      ... on Execution { ...ExecutionFields }
      ... on InvalidInput { message errors { field message } }
      ... on NotFound { message }
    }
  }
  ${EXECUTION_FIELDS}
`;

export const EXECUTION_UPDATES = `
  subscription ExecutionUpdates {
    executionUpdates { ...ExecutionFields }
  }
  ${EXECUTION_FIELDS}
`;

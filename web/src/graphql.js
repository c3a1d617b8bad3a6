// GraphQL over HTTP: one POST per query or mutation, to the same origin.

export const GRAPHQL_PATH = "/graphql";

/** A request that did not give us data: network, HTTP or GraphQL errors. */
export class ApiError extends Error {}

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
    throw new ApiError(body.errors.map((error) => error.message).join("; "));
  }
  if (!response.ok || body.data == null) {
    throw new ApiError(`the server answered HTTP ${response.status}`);
  }
  return body.data;
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

const JOB_FIELDS = `
  fragment JobFields on Job {
    id
    name
    state
    stateReason
    nextRunAt
    createdAt
    schedule { description }
    action { webhook { url } fetch { url } }
    lastExecution { ...ExecutionFields }
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
  query Jobs($after: String) {
    jobs(first: 50, after: $after) {
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

export const CREATE_JOB = `
  mutation CreateJob($input: CreateJobInput!) {
    createJob(input: $input) { ${JOB_RESULT} }
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
`;

// The expanded view of one job: its row's fields, so one read refreshes both,
// and the last 20 executions with what the scheduler decided about each.
export const JOB_HISTORY = `
  query JobHistory($id: ID!) {
    job(id: $id) {
      ...JobFields
      consecutiveFailures
      nextRuns(count: 5)
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

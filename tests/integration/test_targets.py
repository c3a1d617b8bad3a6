"""The daemon against targets that misbehave: what a user reads back for each.

Every target is a real server on loopback (``tests.support.hostile``); every run
goes through a real daemon and PostgreSQL. Each test checks the status, the
recorded error, whether the run will be retried and when, and that the attempt
took bounded time. Bodies that are not UTF-8 or hold NUL bytes are covered in
``test_daemon.py``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trustme

from daemon.worker import Worker
from shared.actions import Action
from shared.egress import EgressPolicy
from shared.http import PER_HOST_LIMIT, DeliveryError, HttpClient
from shared.schedule import Schedule
from tests.support.daemons import one_pass, settings_for, settle, webhook
from tests.support.hostile import (
    Hostile,
    StubResolver,
    client_context,
    gzip_bomb,
    self_signed_context,
    server_context,
)
from tests.support.jobs import attempts_of, db_now, executions_of, insert_job

# The attempt's own timeout plus this much is "bounded": scheduling, writing
# the result and a loaded CI machine.
SLACK = timedelta(seconds=1)
MiB = 1024 * 1024
# Every target here is on loopback.
LOCAL = EgressPolicy.permissive()


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    with Hostile() as server:
        yield server


async def one_off(
    db: psycopg.AsyncConnection, action: Action, **columns: Any
) -> uuid.UUID:
    """A job due now; ``columns`` as for insert_job (max_retries, timeouts...)."""
    return await insert_job(
        db, schedule=Schedule(kind="at", at=await db_now(db)), action=action, **columns
    )


async def run_due(
    database_url: str, *, http: HttpClient | None = None, **overrides: object
) -> None:
    """One daemon claims what is due, performs it and writes the results."""
    settings = settings_for(database_url, **overrides)
    if http is None:
        await one_pass(settings)
        return
    async with _worker_with(settings, http) as worker:
        await worker.run_once()
        await settle(worker)


@asynccontextmanager
async def _worker_with(settings: Any, http: HttpClient) -> AsyncIterator[Worker]:
    worker = Worker(settings, http=http)
    await worker.start()
    try:
        yield worker
    finally:
        await http.aclose()
        await worker.pool.close()


async def only_execution(db: psycopg.AsyncConnection, job_id: uuid.UUID) -> Any:
    [execution] = await executions_of(db, job_id)
    return execution


async def retry_wait(db: psycopg.AsyncConnection, execution: dict[str, Any]) -> float:
    """Seconds from the end of the last attempt to the retry's run_at.

    The retry time is set when the result is written, a moment after the
    attempt ended, so this is the delay the daemon chose plus that moment.
    """
    attempts = await attempts_of(db, execution["id"])
    return (execution["run_at"] - attempts[-1]["finished_at"]).total_seconds()


async def attempt_duration(
    db: psycopg.AsyncConnection, execution: dict[str, Any]
) -> timedelta:
    attempts = await attempts_of(db, execution["id"])
    return attempts[-1]["finished_at"] - attempts[-1]["started_at"]


def rss_bytes() -> int:
    """This process's resident memory, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


# -- no answer in time --------------------------------------------------------


async def test_a_target_that_never_answers_times_out_and_is_retried(
    database_url: str, db: psycopg.AsyncConnection, hostile: Hostile
) -> None:
    """A server that accepts and stays silent costs one timeout, then a retry."""
    job_id = await one_off(db, webhook(hostile.url("/hang")), timeout_seconds=1)

    await run_due(database_url)

    execution = await only_execution(db, job_id)
    assert execution["status"] == "RETRYING"
    assert "timed out after 1 s" in execution["error"]
    assert execution["run_at"] > await db_now(db)
    assert await attempt_duration(db, execution) < timedelta(seconds=1) + SLACK


async def test_a_body_dripped_a_byte_a_second_is_cut_off_by_the_same_deadline(
    database_url: str, db: psycopg.AsyncConnection, hostile: Hostile
) -> None:
    """Headers arrive at once and every byte resets no per-read timer: the one
    deadline over the whole attempt still ends it."""
    job_id = await one_off(db, webhook(hostile.url("/drip")), timeout_seconds=1.5)

    await run_due(database_url)

    execution = await only_execution(db, job_id)
    assert execution["status"] == "RETRYING"
    assert "timed out after 1.5 s" in execution["error"]
    assert await attempt_duration(db, execution) < timedelta(seconds=1.5) + SLACK


# -- statuses -------------------------------------------------------------------


async def test_server_errors_and_rate_limits_are_retried_after_the_jobs_backoff(
    database_url: str, db: psycopg.AsyncConnection, hostile: Hostile
) -> None:
    """5xx, 408, 425 and 429 are outages: RETRYING, after a delay drawn between
    10 % and 100 % of the job's own base (4 s), not the daemon's (1 s)."""
    codes = [500, 502, 503, 504, 507, 408, 425, 429]
    jobs = {
        code: await one_off(
            db,
            webhook(hostile.url(f"/status/{code}")),
            retry_base_seconds=4,
            retry_max_seconds=60,
        )
        for code in codes
    }

    await run_due(database_url)

    for code, job_id in jobs.items():
        execution = await only_execution(db, job_id)
        assert execution["status"] == "RETRYING", code
        assert execution["http_status"] == code
        assert execution["error"].endswith(f"HTTP {code}")
        assert 0.4 <= await retry_wait(db, execution) <= 4.5, code
        # The cap holds from now on, whatever happened after the attempt.
        assert execution["run_at"] <= await db_now(db) + timedelta(seconds=4)


async def test_client_errors_and_redirects_fail_at_once_whatever_max_retries(
    database_url: str, db: psycopg.AsyncConnection, hostile: Hostile
) -> None:
    """A 4xx other than 408/425/429, a redirect not followed and a redirect loop
    come back the same every time: FAILED after one attempt, saying why."""
    codes = [400, 401, 403, 404, 410, 422]
    clients = {
        code: await one_off(db, webhook(hostile.url(f"/status/{code}")), max_retries=5)
        for code in codes
    }
    redirect = await one_off(db, webhook(hostile.url("/redirect")), max_retries=5)
    loop = await one_off(
        db, webhook(hostile.url("/loop"), follow_redirects=True), max_retries=5
    )

    await run_due(database_url)

    for code, job_id in clients.items():
        execution = await only_execution(db, job_id)
        assert execution["status"] == "FAILED", code
        assert execution["failures"] == 1
        assert execution["error"].endswith(f"HTTP {code}: not retried (client error)")
    redirected = await only_execution(db, redirect)
    assert redirected["status"] == "FAILED"
    assert redirected["error"].endswith(
        "/ok not followed: not retried (the job does not set followRedirects)"
    )
    looped = await only_execution(db, loop)
    assert looped["status"] == "FAILED"
    assert "too many redirects" in looped["error"]
    assert looped["error"].endswith("not retried (a redirect loop)")
    # One request each, plus the loop's own chain of redirects.
    assert hostile.requests.count("/redirect") == 1
    for code in codes:
        assert hostile.requests.count(f"/status/{code}") == 1


# -- Retry-After ----------------------------------------------------------------


async def test_retry_after_moves_the_retry_by_the_headers_amount_up_to_the_cap(
    database_url: str, db: psycopg.AsyncConnection, hostile: Hostile
) -> None:
    """Seconds and HTTP-dates are honoured; a huge value waits the job's cap, or
    the daemon's (5 s here) for a job without one; a past date or garbage falls
    back to the backoff (job base 1 s)."""
    per_job = {"retry_base_seconds": 1, "retry_max_seconds": 20}
    cases = {
        "seconds": ("/retry-after/429/seconds/7", per_job, (7.0, 7.5)),
        "date": ("/retry-after/503/date/9", per_job, (9.0, 9.5)),
        "huge": ("/retry-after/429/huge", per_job, (20.0, 20.5)),
        "huge, daemon's cap": ("/retry-after/503/huge", {}, (5.0, 5.5)),
        "past": ("/retry-after/503/past", per_job, (0.1, 1.5)),
        "garbage": ("/retry-after/429/garbage", per_job, (0.1, 1.5)),
        "on a 500": ("/retry-after/500/seconds/3", per_job, (3.0, 3.5)),
    }
    jobs = {
        case: await one_off(db, webhook(hostile.url(path)), **columns)
        for case, (path, columns, _) in cases.items()
    }

    await run_due(database_url)  # retry_max_seconds=5 in these settings

    for case, (_, _, (low, high)) in cases.items():
        execution = await only_execution(db, jobs[case])
        assert execution["status"] == "RETRYING", case
        assert low <= await retry_wait(db, execution) <= high, case


# -- TLS --------------------------------------------------------------------------


async def test_a_self_signed_certificate_fails_at_once_unless_verification_is_off(
    database_url: str, db: psycopg.AsyncConnection
) -> None:
    """Verification failing is a configuration problem: FAILED on the first
    attempt, saying so. verifyTls: false makes the same server work."""
    with Hostile(tls=self_signed_context()) as server:
        verified = await one_off(db, webhook(server.url("/ok")), max_retries=3)
        trusting = await one_off(db, webhook(server.url("/ok"), verify_tls=False))

        await run_due(database_url)

    failed = await only_execution(db, verified)
    assert failed["status"] == "FAILED"
    assert failed["failures"] == 1
    assert "TLS certificate verification failed" in failed["error"]
    assert "self-signed" in failed["error"] or "self signed" in failed["error"]
    assert failed["error"].endswith(
        "not retried (the certificate does not verify; fix it or set verifyTls: false)"
    )
    assert (await only_execution(db, trusting))["status"] == "SUCCEEDED"


async def test_expired_and_wrong_host_certificates_fail_at_once_saying_which(
    database_url: str, db: psycopg.AsyncConnection
) -> None:
    """With the issuing CA trusted, a valid certificate works, and an expired one
    or one for another host name fails at once with OpenSSL's reason."""
    ca = trustme.CA()
    with (
        Hostile(tls=server_context(ca, "valid")) as valid,
        Hostile(tls=server_context(ca, "expired")) as expired,
        Hostile(tls=server_context(ca, "wrong-host")) as wrong_host,
    ):
        jobs = {
            name: await one_off(db, webhook(server.url("/ok")), max_retries=3)
            for name, server in [
                ("valid", valid),
                ("expired", expired),
                ("wrong host", wrong_host),
            ]
        }
        client = HttpClient(egress=LOCAL, ssl_context=client_context(ca))
        await run_due(database_url, http=client)

    assert (await only_execution(db, jobs["valid"]))["status"] == "SUCCEEDED"
    for name, reason in [("expired", "expired"), ("wrong host", "mismatch")]:
        execution = await only_execution(db, jobs[name])
        assert execution["status"] == "FAILED", name
        assert "TLS certificate verification failed" in execution["error"]
        assert reason in execution["error"], execution["error"]
        assert "not retried" in execution["error"]


# -- DNS ----------------------------------------------------------------------------


async def test_a_host_name_that_does_not_resolve_is_retried(
    database_url: str, db: psycopg.AsyncConnection, hostile: Hostile
) -> None:
    """A DNS failure may pass (a record being changed): RETRYING, saying so. No
    real lookup happens: a stub resolver knows one name only."""
    resolver = StubResolver({"hooks.test": "127.0.0.1"})
    known = await one_off(db, webhook(f"http://hooks.test:{hostile.port}/ok"))
    unknown = await one_off(db, webhook("http://nowhere.test/hook"))

    await run_due(database_url, http=HttpClient(egress=LOCAL, resolver=resolver))

    assert (await only_execution(db, known))["status"] == "SUCCEEDED"
    failed = await only_execution(db, unknown)
    assert failed["status"] == "RETRYING"
    assert (
        "POST http://nowhere.test/hook: could not resolve the host" in (failed["error"])
    )
    assert "not retried" not in failed["error"]


# -- size -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "wire_bytes"), [("/big", 50 * 1000 * 1000), ("/gzip-bomb", None)]
)
async def test_huge_answers_are_cut_to_an_excerpt_and_memory_stays_flat(
    database_url: str,
    db: psycopg.AsyncConnection,
    hostile: Hostile,
    path: str,
    wire_bytes: int | None,
) -> None:
    """A 50 MB body, or a gzip body inflating to 256 MiB: a webhook succeeds and
    keeps a 2 KiB excerpt, a fetch fails at once as too large, and the daemon's
    resident memory grows by far less than the body."""
    gzip_bomb()  # made before measuring: it lives in this process too
    webhook_job = await one_off(db, webhook(hostile.url(path)), timeout_seconds=10)
    fetch_job = await one_off(
        db,
        Action(kind="fetch", url=hostile.url(path)),
        timeout_seconds=10,
        max_retries=3,
    )
    before = rss_bytes()

    await run_due(database_url)

    growth = rss_bytes() - before
    assert growth < 50 * MiB, f"RSS grew by {growth / MiB:.0f} MiB"
    hooked = await only_execution(db, webhook_job)
    assert hooked["status"] == "SUCCEEDED"
    [attempt] = await attempts_of(db, hooked["id"])
    assert attempt["response_excerpt"].endswith("…")
    assert len(attempt["response_excerpt"]) <= 2 * 1024 + 1
    fetched = await only_execution(db, fetch_job)
    assert fetched["status"] == "FAILED"
    assert fetched["error"].endswith(
        "response larger than 64 KiB: not retried (results are limited to 64 KiB)"
    )
    if wire_bytes is not None:
        # The daemon hung up instead of draining the rest of the body.
        assert hostile.big_bytes_sent < wire_bytes


# -- one slow host ------------------------------------------------------------------


async def test_one_slow_host_cannot_starve_runs_for_another(
    database_url: str, db: psycopg.AsyncConnection
) -> None:
    """40 runs to a host answering after 3 s and one to a fast host, with 64 run
    slots: the slow host gets at most 16 requests at a time (three waves), and
    the fast run is done long before the first slow one."""
    with Hostile() as slow, Hostile() as fast:
        slow_jobs = [
            await one_off(db, webhook(slow.url("/slow/3")), timeout_seconds=15)
            for _ in range(40)
        ]
        fast_job = await one_off(db, webhook(fast.url("/ok")), timeout_seconds=15)

        await run_due(database_url, concurrency=64)

    quick = await only_execution(db, fast_job)
    assert quick["status"] == "SUCCEEDED"
    quick_took = await attempt_duration(db, quick)
    assert quick_took < timedelta(seconds=1)
    slow_took = []
    for job_id in slow_jobs:
        execution = await only_execution(db, job_id)
        assert execution["status"] == "SUCCEEDED"
        slow_took.append(await attempt_duration(db, execution))
    assert min(slow_took) >= timedelta(seconds=3) > quick_took * 3
    assert slow.peak == PER_HOST_LIMIT == 16
    # Three waves of 16, 16 and 8 requests.
    assert max(slow_took) >= timedelta(seconds=9)


async def test_waiting_for_a_host_slot_counts_against_the_requests_deadline(
    hostile: Hostile,
) -> None:
    """With one slot per host held by a 3 s request, a second request with a
    0.5 s limit gives up after 0.5 s, saying it was waiting for a slot."""
    client = HttpClient(egress=LOCAL, per_host=1)
    try:
        holder = asyncio.create_task(
            client.request("GET", hostile.url("/slow/3"), time_limit=10)
        )
        async with asyncio.timeout(5):
            # The server is in another thread: there is no event to await.
            while hostile.peak < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        began = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            await client.request("GET", hostile.url("/ok"), time_limit=0.5)
        waited = time.monotonic() - began
        assert 0.5 <= waited < 1.0
        assert "timed out after 0.5 s waiting for a free slot" in str(caught.value)
        assert (await holder).status == 200
    finally:
        await client.aclose()

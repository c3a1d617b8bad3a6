"""GraphiQL served offline, and signing in to the console with a token."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any
from urllib.parse import quote

from playwright.sync_api import expect

from tests.browser.helpers import create_job, graphql, screenshot, sign_in, unique
from tests.support.processes import Tickwork
from tests.support.target import Target


def _token(system: Tickwork, scope: str) -> str:
    """A new API token, made the way an operator makes one."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "shared.cli", "token", "create"),
            *("--name", unique(f"browser-{scope}").replace(" ", "-")),
            *("--scope", scope),
        ],
        env=system.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def _run_in_graphiql(page: Any, system: Tickwork, operation: str) -> Any:
    page.goto(f"{system.base_url}/graphql?q={quote(operation)}")
    expect(page.get_by_test_id("graphiql-container")).to_be_visible()
    page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
    return page.locator(".graphiql-response")


def test_graphiql_loads_offline_and_runs_a_query_and_a_subscription(
    page: Any, tickwork: Tickwork, target: Target
) -> None:
    """Every GraphiQL file comes from this server (the page fixture aborts and
    fails any other request); a query answers and a subscription streams."""
    sign_in(page, tickwork)
    name = unique("graphiql")
    job = create_job(
        tickwork,
        name=name,
        schedule={"intervalSeconds": 3600},
        action={"webhook": {"url": target.url("/ok")}},
    )

    response = _run_in_graphiql(
        page,
        tickwork,
        f'{{ jobs(name: "{name}") {{ edges {{ node {{ id name }} }} }} }}',
    )
    expect(response).to_contain_text(job["id"])
    screenshot(page, "graphiql")

    response = _run_in_graphiql(
        page,
        tickwork,
        f'subscription {{ executionUpdates(jobId: "{job["id"]}") {{ jobId status }} }}',
    )
    # Give the socket a moment to subscribe, then make something happen.
    page.wait_for_timeout(500)
    graphql(
        tickwork,
        "mutation ($id: ID!) { triggerJob(id: $id) { __typename } }",
        id=job["id"],
    )
    expect(response).to_contain_text("SUCCEEDED", timeout=15_000)
    expect(response).to_contain_text(job["id"])


def test_sign_in_with_a_token_and_out_again(
    page: Any, tickwork: Tickwork, problems: Any
) -> None:
    """No session: a sign-in form. A wrong token is refused by the form; the
    right one opens the console; signing out closes it."""
    # The refused sign-in is a 401 that Chromium logs as a failed load.
    problems.expect_console_error(r"401 \(Unauthorized\).*auth/session")
    page.goto(tickwork.base_url + "/")
    form = page.locator("#sign-in")
    expect(form).to_be_visible()
    expect(page.locator("#console")).to_be_hidden()
    expect(page.get_by_label("API token")).to_be_focused()
    screenshot(page, "sign-in")

    page.get_by_label("API token").fill("tw_" + "x" * 43)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_contain_text("Not signed in")
    expect(page.locator("#console")).to_be_hidden()

    page.get_by_label("API token").fill(tickwork.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#console")).to_be_visible()
    expect(page.locator("#session-name")).to_contain_text("(write)")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.locator("#auth-banner")).to_be_hidden()

    page.get_by_role("button", name="Sign out").click()
    expect(form).to_be_visible()
    expect(page.locator("#console")).to_be_hidden()
    state = page.request.get(tickwork.base_url + "/auth/session").json()
    assert state["authenticated"] is False


def test_a_read_only_session_cannot_change_jobs(
    page: Any, tickwork: Tickwork, target: Target
) -> None:
    """A read token sees the jobs; every mutating control says it is disabled,
    and using one changes nothing."""
    name = unique("watched")
    create_job(
        tickwork,
        name=name,
        schedule={"intervalSeconds": 3600},
        action={"webhook": {"url": target.url("/ok")}},
    )
    before = graphql(tickwork, "{ jobs(first: 200) { edges { node { id } } } }")
    sign_in(page, tickwork, _token(tickwork, "read"))
    page.goto(tickwork.base_url + "/")

    expect(page.locator("#auth-banner")).to_contain_text("Read-only session")
    expect(page.locator("#session-name")).to_contain_text("(read)")
    test_job = page.get_by_role("button", name="Run test job now", exact=True)
    expect(test_job).to_have_attribute("aria-disabled", "true")
    row = page.locator("#jobs-body > tr[data-job-id]:not(.detail-row)").filter(
        has_text=name
    )
    expect(row.get_by_role("button", name=f"Pause {name}")).to_have_attribute(
        "aria-disabled", "true"
    )

    # aria-disabled, not disabled: the controls still take clicks and focus.
    test_job.click(force=True)
    expect(page.locator("#notice")).to_contain_text("read-only")
    row.get_by_role("button", name=f"Run {name} now").click(force=True)
    expect(page.locator("#notice")).to_contain_text("read-only")
    after = graphql(tickwork, "{ jobs(first: 200) { edges { node { id } } } }")
    assert json.dumps(after) == json.dumps(before)

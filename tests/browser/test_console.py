"""The web console as a person uses it, against real Tickwork processes."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import expect

from tests.browser.helpers import create_job, graphql, screenshot, unique
from tests.support.processes import Tickwork, poll
from tests.support.target import Target

# The page's red and green (style.css --bad and --ok, light scheme).
RED = "rgb(180, 35, 24)"
GREEN = "rgb(23, 106, 53)"


def row_of(page: Any, name: str) -> Any:
    """The job's row, found the way a person would: by its name."""
    return page.locator("#jobs-body > tr[data-job-id]:not(.detail-row)").filter(
        has=page.locator(".job-name", has_text=re.compile(f"^{re.escape(name)}$"))
    )


def filter_by_name(page: Any, name: str) -> None:
    page.get_by_label("Name contains").fill(name)
    expect(page.locator("#jobs-body > tr[data-job-id]:not(.detail-row)")).to_have_count(
        1
    )


def test_a_webhook_job_made_in_the_form_shows_its_first_success_live(
    console: Any, tickwork: Tickwork, target: Target
) -> None:
    """Fill in the form, create, and see the first delivery succeed, no reload."""
    page = console
    page.evaluate("window.__sameDocument = true")
    name = unique("form webhook")

    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Key").fill(f"browser/{name}")
    page.get_by_label("Every (seconds)").fill("3600")
    page.get_by_label("Webhook URL").fill(target.url("/ok"))
    page.get_by_role("textbox", name=re.compile(r"^Headers")).fill(
        '{"X-Team": "ops", "Authorization": "Bearer s3cret"}'
    )
    page.get_by_label("Payload").fill('{"report": "daily"}')
    page.get_by_role("button", name="Create job").click()

    expect(page.locator("#form-message")).to_have_text(f"Created job “{name}”.")
    # Its generated signing secret, shown this once.
    expect(page.locator("#signing-secret .secret-value")).to_contain_text("whsec_")
    result = row_of(page, name).locator(".result")
    expect(result).to_have_attribute("data-tone", "ok", timeout=15_000)
    expect(result.locator(".result-label")).to_contain_text("Succeeded")
    expect(result.locator(".result-label")).to_have_css("color", GREEN)
    expect(row_of(page, name).locator(".strip .bar[data-tone='ok']")).to_have_count(1)
    # The same document all along: nothing reloaded the page.
    assert page.evaluate("window.__sameDocument") is True

    job = graphql(
        tickwork,
        "query ($name: String) { jobs(name: $name) { edges { node { key } } } }",
        name=name,
    )
    assert job["jobs"]["edges"][0]["node"]["key"] == f"browser/{name}"
    delivered = [r for r in target.requests if r.path == "/ok"]
    assert any(r.json()["payload"] == {"report": "daily"} for r in delivered)
    assert any(r.headers.get("x-team") == "ops" for r in delivered)
    screenshot(page, "jobs-list", full_page=True)


def test_a_failing_target_shows_its_error_in_red(
    console: Any, tickwork: Tickwork, target: Target
) -> None:
    """A 404 fails at once; the row says so in red, with the status."""
    page = console
    name = unique("broken hook")
    create_job(
        tickwork,
        name=name,
        schedule={"intervalSeconds": 3600},
        action={"webhook": {"url": target.url("/status/404")}},
        maxRetries=0,
    )
    filter_by_name(page, name)

    result = row_of(page, name).locator(".result")
    expect(result).to_have_attribute("data-tone", "bad", timeout=15_000)
    expect(result.locator(".result-label")).to_contain_text("Failed")
    expect(result.locator(".result-label")).to_have_css("color", RED)
    expect(result.locator(".result-detail")).to_contain_text("404")
    expect(row_of(page, name).locator(".strip .bar[data-tone='bad']")).to_have_count(1)


def test_pause_stops_new_runs(console: Any, tickwork: Tickwork, target: Target) -> None:
    """A job running every second stops being delivered once paused."""
    page = console
    name = unique("every second")
    path = f"/ok/{name.split()[-1]}"
    create_job(
        tickwork,
        name=name,
        schedule={"intervalSeconds": 1},
        action={"webhook": {"url": target.url(path)}},
    )
    filter_by_name(page, name)
    row = row_of(page, name)
    expect(row.locator(".strip .bar[data-tone='ok']")).to_have_count(2, timeout=15_000)

    row.get_by_role("button", name=f"Pause {name}").click()
    expect(row.locator(".badge")).to_have_text("Paused")
    expect(row.get_by_role("button", name=f"Resume {name}")).to_be_visible()

    # A run already under way when the pause landed may still finish.
    time.sleep(1.5)
    settled = sum(1 for r in target.requests if r.path == path)
    time.sleep(3)
    assert sum(1 for r in target.requests if r.path == path) == settled
    job = graphql(
        tickwork,
        "query ($name: String) { jobs(name: $name) { edges { node { state } } } }",
        name=name,
    )
    assert job["jobs"]["edges"][0]["node"]["state"] == "PAUSED"


def test_a_bad_cron_expression_is_named_next_to_its_field(console: Any) -> None:
    """The preview and the API's InvalidInput both put the error by the field."""
    page = console
    page.get_by_label("Name", exact=True).fill(unique("bad cron"))
    page.get_by_role("radio", name="Cron expression").check()
    expression = page.get_by_role("textbox", name="Cron expression")
    expression.fill("*/15 9-17 * * MON-FRI")

    # A valid expression previews its next five fire times, local and UTC.
    preview = page.locator("#schedule-preview")
    expect(preview.locator(".preview-times tbody tr")).to_have_count(5)
    expect(preview.locator(".preview-description")).not_to_be_empty()
    expect(preview.locator(".preview-times tbody tr").first).to_contain_text("UTC")

    expression.fill("61 * * * *")
    error = page.locator("#error-schedule-cron-expression")
    expect(error).to_be_visible()
    expect(error).to_contain_text("61")
    expect(expression).to_have_attribute("aria-invalid", "true")

    # Submitting asks the API, whose InvalidInput lands by the same field.
    page.get_by_label("Webhook URL").fill("http://127.0.0.1:9/hook")
    page.get_by_role("button", name="Create job").click()
    expect(error).to_be_visible()
    expect(expression).to_be_focused()
    screenshot(page.locator("section:has(#create-heading)"), "create-form-error")


def test_invalid_payload_json_is_refused_before_sending(console: Any) -> None:
    """Payload and headers must be JSON; the page says so by each field."""
    page = console
    page.get_by_label("Name", exact=True).fill(unique("bad json"))
    page.get_by_label("Webhook URL").fill("http://127.0.0.1:9/hook")
    page.get_by_label("Payload").fill("{not json")
    page.get_by_role("textbox", name=re.compile(r"^Headers")).fill("[1, 2]")
    page.get_by_role("button", name="Create job").click()

    expect(page.locator("#error-payload")).to_contain_text("Not valid JSON")
    expect(page.locator("#error-action-webhook-headers")).to_contain_text("object")
    expect(page.locator("#form-message")).to_be_hidden()


def test_run_test_job_now_shows_its_first_result(
    console: Any, tickwork: Tickwork
) -> None:
    """The toolbar's test job fetches a quote and shows it within seconds."""
    page = console
    page.get_by_role("button", name="Run test job now", exact=True).click()
    notice = page.locator("#notice")
    expect(notice).to_contain_text("Created the test job")
    name = re.search("“(.+)”", notice.inner_text()).group(1)

    result = row_of(page, name).locator(".result")
    expect(result).to_have_attribute("data-tone", "ok", timeout=10_000)
    expect(result.locator(".result-detail")).to_contain_text("—")  # "quote — author"

    # It would run every 5 s for the rest of the session; deleting from the
    # page is tested elsewhere.
    job_id = row_of(page, name).get_attribute("data-job-id")
    graphql(
        tickwork, "mutation ($id: ID!) { deleteJob(id: $id) { __typename } }", id=job_id
    )


def test_job_details_show_schedule_action_and_history_with_actions(
    console: Any, tickwork: Tickwork, target: Target
) -> None:
    """Details: next fire times, masked secrets, TLS off, runs; retry and cancel."""
    page = console
    name = unique("nightly report")
    job = create_job(
        tickwork,
        name=name,
        schedule={"cron": {"expression": "0 3 * * *", "timezone": "Europe/Berlin"}},
        action={
            "webhook": {
                "url": target.url("/status/500"),
                "headers": {"X-Team": "ops", "X-Api-Key": "k-123456"},
                "verifyTls": False,
            }
        },
        payload={"report": "daily"},
        maxRetries=0,
        timeoutSeconds=10,
    )
    filter_by_name(page, name)
    row = row_of(page, name)
    expect(row.locator(".tls-off")).to_have_text("TLS not verified")

    row.get_by_role("button", name=f"Run {name} now").click()
    row.get_by_role("button", name=f"Details of {name}").click()
    detail = page.locator(f"#detail-{job['id']}")
    expect(detail.locator(".next-runs tbody tr")).to_have_count(5)
    expect(detail.locator(".next-runs tbody tr").first).to_contain_text("UTC")
    expect(detail.locator(".tls-warning")).to_be_visible()
    expect(detail.locator(".headers")).to_contain_text("X-Team: ops")
    expect(detail.locator(".headers")).not_to_contain_text("k-123456")
    expect(detail.locator(".payload")).to_contain_text('"report": "daily"')
    expect(detail).to_contain_text("0 3 * * * (Europe/Berlin)")

    # The manual run failed with HTTP 500: retry it from its row.
    failed = detail.locator("tr[data-status='FAILED']")
    expect(failed).to_have_count(1, timeout=15_000)
    expect(failed).to_contain_text("manual")
    expect(failed).to_contain_text("500")
    calls = sum(1 for r in target.requests if r.path == "/status/500")
    failed.get_by_role("button", name=re.compile("^Retry")).click()
    expect(page.locator("#notice")).to_contain_text("Retrying a run")
    poll(
        lambda: sum(1 for r in target.requests if r.path == "/status/500") > calls,
        timeout=10,
    )
    expect(detail.locator("tr[data-status='FAILED']")).to_have_count(1)
    expect(detail.locator("tr[data-status='FAILED']")).to_contain_text("attempt 2")
    screenshot(page.locator("table.jobs").first, "job-detail")


def test_a_running_execution_can_be_cancelled(
    console: Any, tickwork: Tickwork, target: Target
) -> None:
    """A slow run shows as running with a Cancel button that cancels it."""
    page = console
    name = unique("slow hook")
    job = create_job(
        tickwork,
        name=name,
        schedule={"intervalSeconds": 3600},
        action={"webhook": {"url": target.url("/slow/8")}},
        maxRetries=0,
        timeoutSeconds=20,
    )
    filter_by_name(page, name)
    row_of(page, name).get_by_role("button", name=f"Details of {name}").click()
    detail = page.locator(f"#detail-{job['id']}")
    running = detail.locator("tr[data-status='RUNNING']")
    expect(running).to_have_count(1, timeout=10_000)
    running.get_by_role("button", name=re.compile("^Cancel")).click()
    expect(detail.locator("tr[data-status='CANCELLED']")).to_have_count(1)
    expect(row_of(page, name).locator(".result-label")).to_contain_text("Cancelled")


def test_edit_changes_a_job_through_the_same_form(
    console: Any, tickwork: Tickwork, target: Target
) -> None:
    """Edit fills the form with the job; saving changes only that job."""
    page = console
    name = unique("to edit")
    job = create_job(
        tickwork,
        name=name,
        schedule={"intervalSeconds": 3600},
        action={"webhook": {"url": target.url("/ok")}},
    )
    filter_by_name(page, name)
    row_of(page, name).get_by_role("button", name=f"Details of {name}").click()
    page.get_by_role("button", name=f"Edit {name}").click()

    expect(page.locator("#create-heading")).to_have_text("Edit job")
    expect(page.get_by_label("Name", exact=True)).to_have_value(name)
    expect(page.get_by_label("Every (seconds)")).to_have_value("3600")
    page.get_by_label("Every (seconds)").fill("7200")
    page.get_by_role("button", name="Save changes").click()

    expect(page.locator("#form-message")).to_have_text(f"Saved job “{name}”.")
    expect(row_of(page, name).locator(".schedule")).to_contain_text("7200")
    expect(page.locator("#create-heading")).to_have_text("New job")
    data = graphql(
        tickwork,
        "query ($id: ID!) { job(id: $id) { schedule { intervalSeconds } } }",
        id=job["id"],
    )
    assert data["job"]["schedule"]["intervalSeconds"] == 7200


def test_delete_asks_first(console: Any, tickwork: Tickwork, target: Target) -> None:
    """Delete asks for confirmation; dismissing keeps the job, accepting removes it."""
    page = console
    name = unique("to delete")
    create_job(
        tickwork,
        name=name,
        schedule={"intervalSeconds": 3600},
        action={"webhook": {"url": target.url("/ok")}},
    )
    filter_by_name(page, name)
    remove = row_of(page, name).get_by_role("button", name=f"Delete {name}")

    page.once("dialog", lambda dialog: dialog.dismiss())
    remove.click()
    expect(row_of(page, name)).to_have_count(1)

    page.once("dialog", lambda dialog: dialog.accept())
    remove.click()
    expect(row_of(page, name)).to_have_count(0)
    expect(page.locator("#notice")).to_have_text(f"Deleted “{name}”.")


def test_filters_ask_the_server(
    console: Any, tickwork: Tickwork, target: Target
) -> None:
    """Name and state filters narrow the list to what matches."""
    page = console
    tag = unique("filtered").split()[-1]
    for state in ("one", "two"):
        create_job(
            tickwork,
            name=f"{tag} {state}",
            schedule={"intervalSeconds": 3600},
            action={"webhook": {"url": target.url("/ok")}},
        )
    page.get_by_label("Name contains").fill(tag.upper())
    expect(page.locator("#jobs-body > tr[data-job-id]:not(.detail-row)")).to_have_count(
        2
    )
    row_of(page, f"{tag} two").get_by_role("button", name=f"Pause {tag} two").click()
    expect(row_of(page, f"{tag} two").locator(".badge")).to_have_text("Paused")

    page.get_by_label("State").select_option("PAUSED")
    expect(page.locator("#jobs-body > tr[data-job-id]:not(.detail-row)")).to_have_count(
        1
    )
    expect(page.locator("#jobs-body .job-name")).to_have_text(f"{tag} two")


def test_daemons_show_who_is_alive_and_busy(console: Any) -> None:
    """The one daemon is listed alive with a recent heartbeat."""
    page = console
    rows = page.locator("#daemons-body > tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".run-status")).to_have_text("Alive")
    expect(rows.first).to_contain_text(re.compile(r"\d+ s ago"))
    expect(rows.first.locator(".in-flight")).to_contain_text(
        re.compile(r"^\d+ of \d+$")
    )
    screenshot(page.locator("section:has(#daemons-heading)"), "daemons")


def test_keyboard_users_reach_every_control(console: Any) -> None:
    """Tab reaches the toolbar and form controls with a visible focus ring."""
    page = console
    page.keyboard.press("Tab")  # the skip link
    expect(page.locator(".skip-link")).to_be_focused()
    page.get_by_role("button", name="Run test job now", exact=True).focus()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


def test_narrow_screens_keep_everything_readable(console: Any, target: Target) -> None:
    """At phone width nothing scrolls sideways."""
    page = console
    page.set_viewport_size({"width": 380, "height": 800})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 380, width
    screenshot(page, "jobs-list-narrow", full_page=False)

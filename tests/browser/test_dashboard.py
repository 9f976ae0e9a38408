"""The dashboard as an operator uses it, in Chromium: signing in, live counters, retrying a
dead job from its page, an action on everything a filter matches, pausing a queue, quieting
a worker, user data shown as text, and actions refused without their CSRF token."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import BOSS, CLERK, Site, procfile_web_options
from tests.engine import tasks
from tests.processes import ROOT, stop, wait_until
from worker.ops.api import Ops

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "javascript:alert(3)"]
# Where the screenshots go: docs/dashboard/ when DASHBOARD_SCREENSHOTS=1 (docs/dashboard.md
# shows them), else the test's own folder.
SCREENSHOTS = ROOT / "docs" / "dashboard"


@pytest.fixture
def ops(backend) -> Ops:
    return Ops(backend)


@pytest.fixture
def watched(page: Page) -> dict[str, list[str]]:
    """What the page says that a test must not see: dialogs opened (alert, confirm),
    Content-Security-Policy violations and script errors."""
    seen: dict[str, list[str]] = {"dialogs": [], "console": [], "errors": []}

    def on_dialog(dialog) -> None:
        seen["dialogs"].append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda m: m.type in ("error", "warning") and seen["console"].append(m.text))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    return seen


def state_of(ops: Ops, job_id: str) -> str:
    return ops.place(ops.job(job_id)).state


def dead_letters(ops: Ops, results, timeout: float = 20) -> None:
    wait_until(lambda: all(state_of(ops, r.id) == "dead" for r in results), timeout,
               "the jobs to be dead letters")  # fmt: skip


def looked_twice_while_paused(ops: Ops, queue: str) -> None:
    """Until the site's worker has fetched from the paused ``queue`` twice more, the second
    time after whatever came before: a worker that knows the queue paused waits on its
    ``resumed`` list, and is given a token there, twice. (One that fetched from it all the
    same would never wait there: this fails then.)"""
    client, key = ops.broker.sync, ops.broker.keys.resumed(queue)
    for _ in range(2):
        client.rpush(key, 1)
        wait_until(lambda: client.llen(key) == 0, 10, f"the worker to look at {queue}")


def test_signing_in_through_the_admin_login_and_403_for_non_staff(site: Site, page: Page):
    page.goto(f"{site.url}/tasks/jobs/")
    expect(page).to_have_url(f"{site.url}/admin/login/?next=/tasks/jobs/")
    page.fill("#id_username", BOSS[0])
    page.fill("#id_password", BOSS[1])
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{site.url}/tasks/jobs/")
    expect(page.locator("h1")).to_have_text("Jobs")

    clerk = page.context.browser.new_context()
    site.sign_in(clerk, CLERK[0])
    response = clerk.new_page().goto(f"{site.url}/tasks/")
    assert response is not None and response.status == 403
    clerk.close()


def test_the_overview_counters_move_while_jobs_run_without_a_reload(
    site: Site, page: Page, watched
):
    site.sign_in(page.context)
    page.goto(f"{site.url}/tasks/")
    expect(page.locator("#live")).to_have_attribute("data-state", "on")
    processed = page.locator("[data-live='totals.processed']")
    expect(processed).to_have_text("0")
    page.evaluate("window.notReloaded = true")
    results = [tasks.add.enqueue(n, n) for n in range(12)]
    expect(processed).to_have_text("12", timeout=15_000)
    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("#live-chart")).not_to_have_attribute("data-points", "0")
    assert {r.id for r in results}  # (they ran: the counter says so)
    assert watched == {"dialogs": [], "console": [], "errors": []}


def test_a_dead_job_retried_from_its_page_succeeds(site: Site, page: Page, ops: Ops, watched):
    result = tasks.flaky.enqueue("retried-from-its-page", 3)  # fails 3 attempts of 3
    dead_letters(ops, [result])
    site.sign_in(page.context)
    page.goto(f"{site.url}/tasks/jobs/{result.id}/")
    expect(page.locator(".badge.state-dead")).to_be_visible()
    expect(page.locator(".timeline > li")).to_have_count(3)
    page.get_by_role("button", name="Retry").click()
    expect(page.locator(".notes")).to_contain_text("Retry: 1 of 1 job(s)")
    wait_until(lambda: state_of(ops, result.id) == "successful", 15, "the retry to succeed")
    page.reload()
    expect(page.locator(".badge.state-successful")).to_be_visible()
    expect(page.locator("pre.json").last).to_have_text("4")  # its return value: the 4th try
    assert watched["console"] == [] and watched["errors"] == []


def test_bulk_retry_of_everything_a_filter_matches(site: Site, page: Page, ops: Ops, watched):
    chosen = [tasks.flaky.enqueue(f"bulk-{n}", 3) for n in range(12)]
    others = [tasks.flaky.enqueue(f"other-{n}", 3) for n in range(3)]
    dead_letters(ops, [*chosen, *others], timeout=30)
    site.sign_in(page.context)
    page.goto(f"{site.url}/tasks/jobs/?state=dead&task=tests.engine.tasks.flaky&q=bulk-")
    expect(page.locator("table.jobs tbody tr")).to_have_count(12)
    page.get_by_text("Act on every dead job matching this filter").click()
    page.get_by_role("button", name="Retry all matching").click()
    status = page.locator(".bulk-status")
    expect(status).to_have_text("Done: retry took effect on 12 job(s) of 15 looked at.")
    expect(page.locator("form[data-bulk] progress")).to_have_attribute("value", "15")
    wait_until(lambda: all(state_of(ops, r.id) == "successful" for r in chosen), 20,
               "the jobs retried to succeed")  # fmt: skip
    assert all(state_of(ops, r.id) == "dead" for r in others)  # not matched: left alone
    assert watched["console"] == [] and watched["errors"] == []


def test_pausing_a_queue_stops_new_jobs_and_resuming_restarts_them(
    site: Site, page: Page, ops: Ops
):
    site.sign_in(page.context)
    page.goto(f"{site.url}/tasks/queues/")
    row = page.locator("tr[data-queue=default]")
    row.get_by_role("button", name="Pause").click()
    expect(row.locator(".badge.paused")).to_have_text("paused")
    held = tasks.add.enqueue(1, 2)
    looked_twice_while_paused(ops, "default")
    assert state_of(ops, held.id) == "ready"
    expect(row.locator("[data-field=ready]")).to_have_text("1")  # live
    row.get_by_role("button", name="Resume").click()
    expect(row.locator(".badge.ok")).to_have_text("running")
    wait_until(lambda: state_of(ops, held.id) == "successful", 10, "the job to run")


def test_the_quiet_action_stops_a_workers_fetching(site: Site, page: Page, ops: Ops):
    site.sign_in(page.context)
    [worker] = wait_until(ops.workers, 10, "the worker's heartbeat")
    page.goto(f"{site.url}/tasks/workers/")
    section = page.locator(f"section[data-worker='{worker.id}']")
    section.get_by_role("button", name="Quiet").click()
    expect(page.locator(".notes")).to_contain_text("told to go quiet")
    expect(section.locator(".quiet-live")).to_have_text("quiet", timeout=10_000)  # live
    waiting = tasks.add.enqueue(2, 2)
    site.worker("second")
    wait_until(lambda: state_of(ops, waiting.id) == "successful", 15, "another worker to run it")
    # The quiet worker, idle and live all along, would have run it long before the second
    # one started, had it still fetched.
    assert worker.id not in ops.job(waiting.id).worker_ids
    assert worker.id in {w.id for w in ops.workers()}


def test_user_data_renders_as_text_and_no_script_runs(site: Site, page: Page, ops: Ops, watched):
    echoed = tasks.echo.enqueue({"html": PAYLOADS, PAYLOADS[1]: PAYLOADS[2]})
    failed = tasks.fails_with.enqueue(" ".join(PAYLOADS))
    wait_until(lambda: state_of(ops, echoed.id) == "successful", 10, "the echo job")
    dead_letters(ops, [failed])
    waiting = tasks.echo.using(queue_name="reports").enqueue(PAYLOADS)  # no worker serves it
    site.sign_in(page.context)
    for path in [f"/tasks/jobs/{echoed.id}/", f"/tasks/jobs/{failed.id}/",
                 "/tasks/jobs/?state=dead", "/tasks/jobs/?state=succeeded",
                 "/tasks/jobs/?state=ready&queue=reports"]:  # fmt: skip
        page.goto(f"{site.url}{path}")
        page.wait_for_load_state("load")
        assert page.locator("main img").count() == 0, path
        assert page.locator("main a[href^='javascript:']").count() == 0, path
    page.goto(f"{site.url}/tasks/jobs/{failed.id}/")
    expect(page.locator(".traceback")).to_contain_text(PAYLOADS[0])
    page.goto(f"{site.url}/tasks/jobs/{echoed.id}/")
    expect(page.locator("pre.json").first).to_contain_text(PAYLOADS[1].replace('"', '\\"'))
    assert waiting.id
    assert watched == {"dialogs": [], "console": [], "errors": []}


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    site: Site, page: Page, ops: Ops
):
    site.sign_in(page.context)
    page.goto(f"{site.url}/tasks/queues/")
    refused = page.request.post(f"{site.url}/tasks/queues/default/pause")
    assert refused.status == 403
    assert ops.paused() == {}
    token = page.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")
    accepted = page.request.post(f"{site.url}/tasks/queues/default/pause",
                                 form={"csrfmiddlewaretoken": token}, max_redirects=0)  # fmt: skip
    assert accepted.status == 302 and set(ops.paused()) == {"default"}


def test_screenshots_of_every_page(site: Site, page: Page, ops: Ops, watched, tmp_path):
    """Each page with demo-like data, as docs/dashboard.md shows it (written there with
    DASHBOARD_SCREENSHOTS=1); no page breaks the Content-Security-Policy."""
    folder = SCREENSHOTS if os.environ.get("DASHBOARD_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    done = [tasks.add.enqueue(n, 1) for n in range(30)]
    failing = [tasks.flaky.enqueue(f"shot-{n}", 3) for n in range(4)]
    tasks.sleeper.enqueue(30)
    tasks.echo.using(queue_name="reports").enqueue({"report": 7, "format": "pdf"})
    dead_letters(ops, failing)
    wait_until(lambda: all(state_of(ops, r.id) == "successful" for r in done), 15, "the jobs")
    wait_until(lambda: sum(p.processed for p in ops.history("minute")) >= 42, 10,
               "the worker to write its figures")  # fmt: skip
    site.sign_in(page.context)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{site.url}/tasks/")
    for n in range(8):  # jobs while the live chart draws
        tasks.add.enqueue_many([((n, m), {}) for m in range(10 * (n % 4 + 1))])
        page.wait_for_timeout(700)
    pages = {
        "overview": "/tasks/",
        "queues": "/tasks/queues/",
        "workers": "/tasks/workers/",
        "jobs": "/tasks/jobs/?state=dead",
        "job": f"/tasks/jobs/{failing[0].id}/",
        "periodic": "/tasks/periodic/",
        "by-task": "/tasks/by-task/",
    }
    for name, path in pages.items():
        page.goto(f"{site.url}{path}")
        page.wait_for_load_state("load")
        if name == "overview":
            page.wait_for_timeout(1500)  # its stream's first message: the chart so far
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
    assert watched == {"dialogs": [], "console": [], "errors": []}


def test_an_open_tab_does_not_hold_up_the_sites_stop(site: Site):
    """uvicorn, run as the Procfile runs it, stops within its graceful timeout although a
    dashboard tab still listens to its live updates."""
    options = procfile_web_options()
    grace = int(options[options.index("--timeout-graceful-shutdown") + 1])
    cookies = {"sessionid": site.sessions[BOSS[0]]}
    with httpx.stream("GET", f"{site.url}/tasks/events", cookies=cookies, timeout=30) as tab:
        assert tab.headers["content-type"] == "text/event-stream"
        assert next(tab.iter_raw()).startswith(b"retry: ")
        began = time.monotonic()
        stop(site.processes["site"], timeout=30)
    assert time.monotonic() - began < grace + 5

"""A workflow's page in the dashboard: its status, progress and steps linked to their jobs,
the link from a step's job page, the staff-only CSRF-checked cancel, escaping; through
Django's test client on the real Redis, the steps run by a real worker."""

from __future__ import annotations

import asyncio
import logging
import re
from urllib.parse import quote

import orjson
import pytest
from django.test import Client

from tests.dashboard.test_access import token
from tests.dashboard.test_pages import PAYLOADS
from tests.engine import tasks
from worker.dashboard.access import VIEW
from worker.dashboard.pages import STEPS_PAGE
from worker.ops.api import Ops
from worker.workflows import Batch, chain, group, step

pytestmark = pytest.mark.django_db(transaction=True)


def three_steps():
    return chain(
        step(tasks.record, "a"),
        step(tasks.concat, "b").taking_result(),
        step(tasks.concat, "c").taking_result(),
    )


def page(client: Client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    return response.content.decode()


def states(html: str) -> list[str]:
    """The steps' states, in the order the page lists them."""
    return re.findall(r'<span class="badge step-[a-z]+">([a-z]+)</span>', html)


async def test_the_page_shows_progress_and_links_each_step_to_its_job(admin_client, run_worker):
    workflow = await three_steps().aenqueue()
    html = await asyncio.to_thread(page, admin_client, f"/tasks/workflows/{workflow.id}/")
    assert "workflow-running" in html and "0 of 3 steps ended" in html
    assert states(html) == ["ready", "waiting", "waiting"]
    for job_id in workflow.steps:
        assert f'href="/tasks/jobs/{job_id}/"' in html
    assert html.count("tests.engine.tasks.concat") == 2

    job = await asyncio.to_thread(page, admin_client, f"/tasks/jobs/{workflow.steps[1]}/")
    assert f'href="/tasks/workflows/{workflow.id}/"' in job
    assert "state-waiting" in job and "waits for the ones before it" in job
    # A waiting step is on no list: it can be cancelled, not retried or deleted.
    assert re.findall(r'name="action" value="([a-z]+)"', job) == ["cancel"]

    async with run_worker(concurrency=4):
        await workflow.afinished(10)
    html = await asyncio.to_thread(page, admin_client, f"/tasks/workflows/{workflow.id}/")
    assert "workflow-succeeded" in html and "3 of 3 steps ended" in html
    assert states(html) == ["successful"] * 3
    assert "Cancel workflow" not in html  # it has ended: nothing to cancel


def test_cancel_is_a_csrf_checked_post_for_who_may_act_and_is_logged(
    admin_client, make_user, backend, caplog
):
    workflow = three_steps().enqueue()
    url = f"/tasks/workflows/{workflow.id}/"
    ops = Ops(backend)

    viewer = Client()  # no CSRF check: the permission alone refuses
    viewer.force_login(make_user("viewer", perms=[VIEW]))
    seen = page(viewer, url)
    assert 'method="post"' not in seen and "Cancel workflow" not in seen
    assert viewer.post(f"{url}cancel").status_code == 403
    assert admin_client.post(f"{url}cancel").status_code == 403  # no CSRF token
    assert admin_client.get(f"{url}cancel").status_code == 405
    assert ops.workflow(workflow.id).progress.status == "RUNNING"

    csrf = token(admin_client, url)
    with caplog.at_level(logging.INFO, logger="worker.dashboard"):
        response = admin_client.post(f"{url}cancel", {"csrfmiddlewaretoken": csrf})
    assert response.status_code == 302 and response["Location"] == url
    assert [r.getMessage() for r in caplog.records if r.name == "worker.dashboard"] == [
        f"boss: cancel workflow {workflow.id}"
    ]
    html = page(admin_client, url)
    assert f"Workflow {workflow.id} cancelled." in html
    assert "workflow-cancelled" in html and states(html) == ["cancelled"] * 3

    again = admin_client.post(f"{url}cancel", {"csrfmiddlewaretoken": csrf})
    assert again.status_code == 302
    html = page(admin_client, url)
    assert "had ended (CANCELLED): nothing to cancel" in html


def test_read_only_refuses_the_cancel(make_user, backend, settings):
    workflow = three_steps().enqueue()
    settings.TASKS_DASHBOARD = {"read_only": True}
    boss = Client()
    boss.force_login(make_user("boss", superuser=True))
    url = f"/tasks/workflows/{workflow.id}/"
    assert 'method="post"' not in page(boss, url)
    assert boss.post(f"{url}cancel").status_code == 403
    assert Ops(backend).workflow(workflow.id).progress.status == "RUNNING"


def test_an_unknown_workflow_is_404_and_anonymous_visitors_sign_in_first(
    admin_client, actor_client
):
    workflow = three_steps().enqueue()
    for workflow_id in (workflow.id[:-4] + "0000", "not-an-id", workflow.steps[0]):
        response = admin_client.get(f"/tasks/workflows/{workflow_id}/")
        assert response.status_code == 404, workflow_id
    url = f"/tasks/workflows/{workflow.id}/"
    anonymous = Client().get(url)
    assert anonymous.status_code == 302
    assert anonymous["Location"] == f"/admin/login/?next={quote(url)}"
    csrf = token(actor_client, url)
    gone = workflow.id[:-4] + "0000"
    response = actor_client.post(f"/tasks/workflows/{gone}/cancel", {"csrfmiddlewaretoken": csrf})
    assert response.status_code == 302 and response["Location"] == "/tasks/jobs/"


def test_user_data_is_escaped_and_the_policy_strict(admin_client, backend):
    workflow = three_steps().enqueue()
    # A message naming no task of this project, as a foreign or hostile writer could leave.
    message = orjson.dumps({"task": PAYLOADS[1], "args": []})
    backend.broker.sync.hset(backend.broker.keys.job(workflow.steps[0]), "m", message)
    response = admin_client.get(f"/tasks/workflows/{workflow.id}/")
    html = response.content.decode()
    assert "<img src=x" not in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in html  # shown, as text
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "<script>" not in html and " style=" not in html


def test_a_long_workflow_pages_its_steps(admin_client):
    workflow = group([step(tasks.add, i, i) for i in range(STEPS_PAGE + 20)]).enqueue()
    url = f"/tasks/workflows/{workflow.id}/"
    first = page(admin_client, url)
    assert workflow.steps[0] in first and workflow.steps[STEPS_PAGE - 1] in first
    assert workflow.steps[STEPS_PAGE] not in first
    assert f"Steps 1 to {STEPS_PAGE} of {STEPS_PAGE + 20}." in first
    following = re.search(r'rel="next" href="([^"]+)"', first).group(1)
    second = page(admin_client, url + following)
    assert workflow.steps[STEPS_PAGE] in second and workflow.steps[-1] in second
    assert workflow.steps[0] not in second and 'rel="next"' not in second
    assert "Previous steps" in second


def test_a_batch_page_counts_its_jobs_and_lists_its_callbacks(admin_client):
    batch = Batch.open(on_success=step(tasks.record, "ok"))
    job = batch.enqueue(tasks.add, 1, 1)
    html = page(admin_client, f"/tasks/workflows/{batch.id}/")
    assert "Batch <code>" in html and "open: it takes more jobs" in html
    assert "0 of 1 jobs ended" in html and states(html) == ["waiting"]
    assert "Cancel batch" in html and "Its callbacks will never run" in html
    job_page = page(admin_client, f"/tasks/jobs/{job.id}/")
    assert f'href="/tasks/workflows/{batch.id}/"' in job_page

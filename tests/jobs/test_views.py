from datetime import UTC, datetime

import pytest
from django.tasks import TaskResult, TaskResultStatus
from django.tasks.base import TaskError
from django.test import AsyncClient

from jobs.models import Report
from jobs.tasks import send_report, sync_orders
from jobs.views import task_result_json
from tests.conftest import tasks_setting
from tests.engine import tasks
from worker.exceptions import BrokerUnavailable

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client() -> AsyncClient:
    return AsyncClient()


async def test_post_sync_orders_enqueues_and_answers_202(client, enqueued_jobs):
    response = await client.post("/jobs/sync-orders/")

    assert response.status_code == 202
    body = response.json()
    (result,) = enqueued_jobs.assert_enqueued(sync_orders, count=1)
    assert body == {
        "job_id": result.id,
        "status": "READY",
        "status_url": f"http://testserver/jobs/{result.id}/",
    }
    assert response["Location"] == body["status_url"]
    assert result.task.module_path == "jobs.tasks.sync_orders"


async def test_the_status_url_shows_the_enqueued_job(client):
    job_id = (await client.post("/jobs/sync-orders/")).json()["job_id"]

    response = await client.get(f"/jobs/{job_id}/")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == job_id
    assert body["task"] == "jobs.tasks.sync_orders"
    assert (body["status"], body["queue"], body["args"], body["kwargs"]) == (
        "READY",
        "default",
        [],
        {},
    )
    assert body["enqueued_at"] is not None and body["started_at"] is None
    assert (body["attempts"], body["worker_ids"], body["errors"]) == (0, [], [])
    assert "return_value" not in body


async def test_wait_answers_as_soon_as_the_job_ends(client, run_worker):
    result = await tasks.sleeper.aenqueue(0.2)

    async with run_worker():
        body = (await client.get(f"/jobs/{result.id}/?wait=20")).json()

    assert (body["status"], body["return_value"]) == ("SUCCESSFUL", "woke")


async def test_wait_answers_with_the_job_as_it_stands_after_that_long(client):
    result = await tasks.add.aenqueue(1, 2)  # no worker runs it

    body = (await client.get(f"/jobs/{result.id}/?wait=0.1")).json()

    assert body["status"] == "READY"


@pytest.mark.parametrize("wait", ["soon", "-1", "nan"])
async def test_a_wait_that_is_not_a_number_of_seconds_is_400(client, wait):
    result = await tasks.add.aenqueue(1, 2)

    response = await client.get(f"/jobs/{result.id}/?wait={wait}")

    assert response.status_code == 400
    assert response.json() == {"error": f"wait must be a number of seconds, not {wait!r}"}


async def test_post_reports_creates_a_report_and_enqueues_its_delivery(client, enqueued_jobs):
    response = await client.post("/reports/")

    assert response.status_code == 202
    body = response.json()
    report = await Report.objects.aget()
    (result,) = enqueued_jobs.assert_enqueued(send_report, args=[report.pk], count=1)
    assert body["report_id"] == report.pk and body["job_id"] == result.id
    assert body["report_url"] == f"http://testserver/reports/{report.pk}/"
    assert (result.task.module_path, result.task.queue_name) == (
        "jobs.tasks.send_report",
        "reports",
    )
    job = (await client.get(f"/jobs/{result.id}/")).json()
    assert (job["queue"], job["args"]) == ("reports", [report.pk])


async def test_report_detail(client):
    report = await Report.objects.acreate()

    body = (await client.get(f"/reports/{report.pk}/")).json()

    assert body["id"] == report.pk and body["status"] == "pending"
    assert body["delivery_id"] == str(report.delivery_id) and body["delivered_at"] is None


@pytest.mark.parametrize(
    "url", ["/jobs/default:00000000000deadbeefdeadbeef/", "/jobs/not-a-job-id/", "/reports/999/"]
)
async def test_unknown_ids_are_json_404s(client, url):
    response = await client.get(url)

    assert response.status_code == 404
    assert "error" in response.json()


@pytest.mark.parametrize(
    ("method", "url"), [("get", "/jobs/sync-orders/"), ("get", "/reports/"), ("post", "/jobs/x:y/")]
)
async def test_wrong_methods_are_405(client, method, url):
    assert (await getattr(client, method)(url)).status_code == 405


@pytest.fixture
def redis_unreachable(settings, tasks_prefix) -> None:
    """TASKS pointed at a port nothing listens on (9, discard): every Redis call fails."""
    settings.TASKS = tasks_setting("redis://127.0.0.1:9/0", tasks_prefix)


@pytest.mark.parametrize(
    ("method", "url", "says"),
    [
        ("post", "/jobs/sync-orders/", "Nothing was enqueued."),
        ("post", "/reports/", "Nothing was enqueued."),
        ("get", "/jobs/default:00000000000deadbeefdeadbeef/", "Try again shortly."),
    ],
)
async def test_an_unreachable_redis_is_a_json_503(
    client, redis_unreachable, enqueued_jobs, method, url, says
):
    response = await getattr(client, method)(url)

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "5"
    error = response.json()["error"]
    assert error.startswith("The job queue is unavailable (Redis cannot be reached).")
    assert says in error
    # What failed where stays in the server's log: no Redis address in the answer.
    assert "127.0.0.1" not in error
    enqueued_jobs.assert_nothing_enqueued()


async def test_a_report_whose_job_cannot_be_enqueued_is_not_kept(client, redis_unreachable):
    response = await client.post("/reports/")

    assert response.status_code == 503
    # No job would ever build it: it must not linger as "pending".
    assert not await Report.objects.aexists()


async def test_a_report_whose_job_may_have_been_stored_is_kept(client, monkeypatch):
    # The request went out and no reply came: the job may run, and must find its report.
    async def no_reply(*args, **kwargs):
        raise BrokerUnavailable("no reply came", maybe_stored=True)

    monkeypatch.setattr(type(send_report), "aenqueue", no_reply)
    response = await client.post("/reports/")

    assert response.status_code == 503
    assert "It may have been enqueued." in response.json()["error"]
    assert await Report.objects.acount() == 1


def test_result_json_of_a_finished_job_has_its_return_value_and_errors():
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    finished = _result(TaskResultStatus.SUCCESSFUL, moment)
    object.__setattr__(finished, "_return_value", {"fetched": 3})

    body = task_result_json(finished)

    assert body["return_value"] == {"fetched": 3}
    assert body["finished_at"] == "2026-01-02T03:04:05+00:00"
    assert body["errors"] == [{"exception_class_path": "httpx.ReadTimeout", "traceback": "tb"}]
    assert body["attempts"] == 2 and body["worker_ids"] == ["w1", "w2"]
    assert "return_value" not in task_result_json(_result(TaskResultStatus.FAILED, moment))


def _result(status: TaskResultStatus, moment: datetime) -> TaskResult:
    return TaskResult(
        task=sync_orders,
        id="default:abc",
        status=status,
        enqueued_at=moment,
        started_at=moment,
        finished_at=moment,
        last_attempted_at=moment,
        args=[],
        kwargs={},
        backend="default",
        errors=[TaskError(exception_class_path="httpx.ReadTimeout", traceback="tb")],
        worker_ids=["w1", "w2"],
    )

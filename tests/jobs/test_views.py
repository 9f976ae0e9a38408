import asyncio
import json
import time
from datetime import UTC, datetime

import pytest
from django.tasks import TaskResult, TaskResultStatus
from django.tasks.base import TaskError
from django.test import AsyncClient

from jobs import views
from jobs.models import Report
from jobs.tasks import send_report, sync_orders
from jobs.views import task_result_json
from tests.conftest import tasks_setting
from tests.engine import tasks
from worker.exceptions import BrokerUnavailable
from worker.ops import Ops
from worker.waiting import afinished

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
    "url",
    [
        "/jobs/default:00000000000deadbeefdeadbeef/",
        "/jobs/not-a-job-id/",
        "/reports/999/",
        "/workflows/default:00000000000deadbeefdeadbeef/",
        "/workflows/not-a-workflow-id/",
    ],
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


async def events_of(response) -> list[tuple[str, dict]]:
    """The (id, data) of each event of a text/event-stream response, to its end."""
    text = b"".join([chunk async for chunk in response.streaming_content]).decode()
    found = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            found.append((fields["id"], json.loads(fields["data"])))
    return found


async def test_the_event_stream_follows_the_job_to_its_end(client, run_worker, backend):
    result = await tasks.reports_then_waits.aenqueue("test-events-go")
    try:
        async with run_worker():
            response = await client.get(f"/jobs/{result.id}/events")
            assert response["Content-Type"] == "text/event-stream"
            stream = response.streaming_content
            first = await anext(stream)  # READY, or RUNNING already
            assert b"event: job" in first
            seen = [first]
            async for chunk in stream:
                seen.append(chunk)
                if b'"halfway"' in chunk:
                    await backend.broker.aclient().set("test-events-go", 1)
    finally:
        await backend.broker.aclient().delete("test-events-go")

    states = [json.loads(c.decode().split("data: ", 1)[1]) for c in seen if b"data: " in c]
    assert [s["progress"] for s in states if s["status"] == "RUNNING"][-1] == {
        "done": 1,
        "total": 2,
        "note": "halfway",
    }
    assert states[-1]["status"] == "SUCCESSFUL"  # and the stream ended there


async def test_the_event_stream_of_a_long_job_ends_after_a_while_for_the_client_to_reconnect(
    client, run_worker, backend, monkeypatch
):
    monkeypatch.setattr(views, "STREAM_FOR", 1.0)
    result = await tasks.reports_then_waits.aenqueue("test-events-long")
    try:
        async with run_worker():
            response = await client.get(f"/jobs/{result.id}/events")
            began = time.monotonic()
            async with asyncio.timeout(5):  # a job that runs on: the stream ends all the same
                events = await events_of(response)
            assert 0.9 < time.monotonic() - began < 3
            assert events and events[-1][1]["status"] in ("READY", "RUNNING")
            await backend.broker.aclient().set("test-events-long", 1)
            await afinished(result, timeout=10)
    finally:
        await backend.broker.aclient().delete("test-events-long")


async def test_a_stream_opened_after_the_end_gives_the_final_state_and_closes(client, run_worker):
    result = await tasks.add.aenqueue(1, 2)
    async with run_worker():
        await afinished(result, timeout=10)

    [(event_id, state)] = await events_of(await client.get(f"/jobs/{result.id}/events"))

    assert (event_id, state["status"], state["return_value"]) == ("final", "SUCCESSFUL", 3)
    # A client back with the final event's id has it all: 204 stops its EventSource.
    again = await client.get(f"/jobs/{result.id}/events", headers={"Last-Event-ID": "final"})
    assert again.status_code == 204


async def test_a_stream_says_when_its_job_is_gone(client, backend):
    result = await tasks.add.aenqueue(1, 2)
    response = await client.get(f"/jobs/{result.id}/events")
    stream = response.streaming_content
    assert b"event: job" in await anext(stream)

    assert await asyncio.to_thread(Ops(backend).delete, result.id) == 1  # its waiters told
    rest = b"".join([chunk async for chunk in stream])

    assert rest.startswith(b"event: gone")


async def test_the_event_stream_of_an_unknown_job_is_404(client):
    response = await client.get("/jobs/default:00000000000deadbeefdeadbeef/events")
    assert response.status_code == 404

"""The dashboard's pages and actions, through Django's test client, on a real Redis: what
each shows, that user data is escaped, the jobs page's cursor and bulk actions, and the
live stream."""

import asyncio
import re
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from tests.dashboard.test_access import token
from tests.engine import tasks
from tests.engine.helpers import eventually, finished
from worker.dashboard import live
from worker.ops.api import Ops
from worker.ops.browse import JobFilter

pytestmark = pytest.mark.django_db(transaction=True)

PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "javascript:alert(3)"]


async def test_user_data_is_escaped_on_every_page(admin_client, run_worker, backend):
    failed = await tasks.echo.aenqueue({"p": PAYLOADS, "k": PAYLOADS[1]})
    async with run_worker():
        await finished(failed)
    waiting = await tasks.echo.aenqueue(PAYLOADS[0])
    pages = ["/tasks/jobs/?state=succeeded", "/tasks/jobs/?state=ready",
             f"/tasks/jobs/{failed.id}/", f"/tasks/jobs/{waiting.id}/", "/tasks/"]  # fmt: skip
    for page in pages:
        html = (await asyncio.to_thread(admin_client.get, page)).content.decode()
        assert "<script>alert" not in html and "<img src=x" not in html, page
        assert 'href="javascript:' not in html, page
    detail = (await asyncio.to_thread(admin_client.get, f"/tasks/jobs/{failed.id}/")).content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in detail  # shown, as text
    assert b"&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in detail


def test_the_jobs_page_pages_with_a_cursor(admin_client):
    ids = [tasks.add.enqueue(n, n).id for n in range(60)]
    first = admin_client.get("/tasks/jobs/?state=ready&queue=default").content.decode()
    assert ids[0] in first and ids[49] in first and ids[50] not in first
    cursor = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = admin_client.get(f"/tasks/jobs/{cursor}").content.decode()
    assert ids[50] in second and ids[59] in second and ids[0] not in second
    assert 'rel="next"' not in second
    bad = admin_client.get("/tasks/jobs/?state=lost")
    assert bad.status_code == 200 and b"no state &#x27;lost&#x27;" in bad.content


async def test_a_failed_jobs_page_shows_each_attempt_and_retry_sends_it_back(
    admin_client, run_worker, backend
):
    result = await tasks.fails_once.aenqueue("timeline")
    async with run_worker():
        await finished(result)
    html = (await asyncio.to_thread(admin_client.get, f"/tasks/jobs/{result.id}/")).content
    html = html.decode()
    assert "Attempt 1" in html and "Attempt 2" in html
    assert html.count("began") == 2 and "ConnectionError" in html  # the failed attempt's error
    doomed = await tasks.permanent.aenqueue()
    async with run_worker():
        await finished(doomed)
    csrf = await asyncio.to_thread(token, admin_client, f"/tasks/jobs/{doomed.id}/")
    response = await asyncio.to_thread(
        admin_client.post, "/tasks/jobs/act",
        {"csrfmiddlewaretoken": csrf, "job": doomed.id, "action": "retry",
         "next": f"/tasks/jobs/{doomed.id}/"},
    )  # fmt: skip
    assert response.status_code == 302 and response["Location"] == f"/tasks/jobs/{doomed.id}/"
    assert Ops(backend).place(Ops(backend).job(doomed.id)).state == "ready"


async def test_a_bulk_action_goes_batch_by_batch_with_the_cursor(admin_client, run_worker, backend):
    doomed = [await tasks.permanent.aenqueue() for _ in range(4)]
    async with run_worker():
        for result in doomed:
            await finished(result)
    csrf = await asyncio.to_thread(token, admin_client, "/tasks/jobs/?state=dead")
    form = {"csrfmiddlewaretoken": csrf, "state": "dead", "queue": "", "task": "", "q": "",
            "action": "retry", "cursor": ""}  # fmt: skip
    done = 0
    for _ in range(10):
        response = await asyncio.to_thread(admin_client.post, "/tasks/jobs/bulk", form)
        step = response.json()
        done += step["done"]
        if step["cursor"] is None:
            break
        form["cursor"] = step["cursor"]
    assert done == 4
    assert Ops(backend).browse(JobFilter("dead")).records == []
    form.update(action="retry", state="ready", cursor="")
    refused = await asyncio.to_thread(admin_client.post, "/tasks/jobs/bulk", form)
    assert refused.status_code == 400 and "cannot retry ready jobs" in refused.json()["error"]


def test_the_periodic_page_runs_pauses_and_resumes_a_schedule(admin_client, backend):
    html = admin_client.get("/tasks/periodic/").content.decode()
    assert "jobs.tasks.sync_orders" in html and "every 5 minutes" in html
    assert "every day at 06:00 (UTC)" in html
    csrf = token(admin_client, "/tasks/periodic/")
    form = {"csrfmiddlewaretoken": csrf, "schedule": "jobs.tasks.sync_orders"}
    ran = admin_client.post("/tasks/periodic/run", form)
    assert ran.status_code == 302
    [schedule] = [
        s for s in Ops(backend).schedules() if s.periodic.name == "jobs.tasks.sync_orders"
    ]
    assert len(schedule.runs) == 1
    admin_client.post("/tasks/periodic/pause", form)
    assert "paused" in admin_client.get("/tasks/periodic/").content.decode()


async def test_the_live_stream_sends_the_figures_and_one_reader_serves_every_page(
    make_user, backend
):
    user = await asyncio.to_thread(make_user, "boss", superuser=True)
    await tasks.add.aenqueue(1, 1)
    clients = [AsyncClient(), AsyncClient()]
    for client in clients:
        await client.aforce_login(user)
    responses = [await client.get("/tasks/events") for client in clients]
    assert responses[0]["Content-Type"] == "text/event-stream"
    streams = [response.streaming_content.__aiter__() for response in responses]
    for stream in streams:
        assert await anext(stream) == b"retry: %d\n\n" % live.RETRY_MS
    first = [orjson.loads((await anext(stream))[6:]) for stream in streams]
    assert first[0]["totals"]["enqueued"] == 1 and "series" in first[0]
    assert first[0]["queues"]["default"]["ready"] == 1
    hub = live.hub()
    reads = hub.reads
    for _ in range(3):  # three more messages on each stream, both listening at once
        for message in await asyncio.gather(*(anext(stream) for stream in streams)):
            assert "series" not in orjson.loads(message[6:])
    assert hub.reads - reads <= 4  # one reading per second for both pages, not one each
    # A page that goes (its tab hidden, or closed) is cancelled mid-wait, as the ASGI
    # server does on a disconnect; with none left, the reader stops reading.
    waits = [asyncio.create_task(anext(stream)) for stream in streams]
    await asyncio.sleep(0.05)
    for wait in waits:
        wait.cancel()
    await asyncio.gather(*waits, return_exceptions=True)
    assert hub.listeners == 0
    await asyncio.sleep(live.EVERY + 0.2)
    reads = hub.reads
    await asyncio.sleep(live.EVERY + 0.2)
    assert hub.reads == reads


# The tests below call sync code through sync_to_async, in one thread for all: each thread
# of asyncio.to_thread's keeps a connection of the database's pool for good (Django's test
# client leaves connections open), and ten are soon taken.


async def events(user) -> AsyncIterator[bytes]:
    """A signed-in page's stream of /tasks/events, from its first message on."""
    client = AsyncClient()
    await client.aforce_login(user)
    stream = (await client.get("/tasks/events")).streaming_content.__aiter__()
    assert (await anext(stream)).startswith(b"retry: ")
    return stream


async def close(stream: AsyncIterator[bytes]) -> None:
    """As the ASGI server ends a stream whose page went: cancelled mid-wait."""
    wait = asyncio.create_task(anext(stream))
    await asyncio.sleep(0.05)
    wait.cancel()
    await asyncio.gather(wait, return_exceptions=True)


async def test_a_stream_ends_after_a_while_so_that_a_server_can_stop(make_user, monkeypatch):
    monkeypatch.setattr(live, "STREAM_FOR", 1.5)
    user = await sync_to_async(make_user)("boss", superuser=True)
    stream = await events(user)
    began = time.monotonic()
    async with asyncio.timeout(5):  # (the page connects again: its EventSource's retry)
        messages = [message async for message in stream]
    assert 1.4 < time.monotonic() - began < 3
    assert len(messages) >= 2 and all(m.startswith(b"data: ") for m in messages)
    assert live.hub().listeners == 0


async def test_a_page_that_opens_after_the_reader_rested_gets_a_fresh_reading(make_user):
    user = await sync_to_async(make_user)("boss", superuser=True)
    first = await events(user)
    assert orjson.loads((await anext(first))[6:])["totals"]["enqueued"] == 0
    await close(first)  # the tab closes: the reader stops
    hub = live.hub()
    await eventually(lambda: hub._reader is not None and hub._reader.done())
    await tasks.add.aenqueue(1, 1)
    later = await events(user)
    assert orjson.loads((await anext(later))[6:])["totals"]["enqueued"] == 1
    await close(later)


async def test_the_overview_counts_the_jobs_enqueued_as_its_live_updates_do(admin_client, backend):
    ops = Ops(backend)
    ops.set_limit("tests.engine.tasks.limited", concurrency=0)  # holds every job of it
    for n in range(3):
        await tasks.limited.aenqueue(f"held-{n}", 0)
    await backend.broker.queue("default").fetch(1, "w:1:a")  # finds them held
    await tasks.add.aenqueue(1, 1)
    assert (ops.stats("default").ready, ops.stats("default").held) == (1, 3)
    html = (await sync_to_async(admin_client.get)("/tasks/")).content.decode()
    shown = re.search(r'data-live="totals.enqueued">(\d+)<', html)
    message = live.Hub().message(await ops.asnapshot())
    assert shown is not None and int(shown.group(1)) == message["totals"]["enqueued"] == 1


async def test_the_workers_page_reads_the_heartbeats_once(admin_client, backend, monkeypatch):
    for n in range(4):
        info = {"id": f"host:{n}:a", "host": "host", "pid": n, "queues": ["default"]}
        await backend.broker.heartbeat(f"host:{n}:a", orjson.dumps(info), 10_000)
    job = await tasks.add.aenqueue(1, 1)
    await backend.broker.queue("default").fetch(1, "host:2:a")  # it runs job
    reads = []
    real = type(backend.broker).heartbeats
    monkeypatch.setattr(type(backend.broker), "heartbeats",
                        lambda self: reads.append(1) or real(self))  # fmt: skip
    html = (await sync_to_async(admin_client.get)("/tasks/workers/")).content.decode()
    assert html.count('data-worker="host:') == 4 and job.id in html
    assert len(reads) == 1  # not once more per worker

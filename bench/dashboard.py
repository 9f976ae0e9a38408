"""The dashboard's pages with a large backlog: how long each takes to render (the view and
its template, called in process as Django calls it) with ``jobs`` no-op jobs ready in one
queue and a few hundred dead letters beside them. No page may read a whole state: none
should grow with the backlog.

A workload of bench/run.py (``--only dashboard``): its row is the slowest page's median.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

# Each page, as a path and its view's arguments.
PAGES = {
    "overview": ("/tasks/", "overview", {}),
    "queues": ("/tasks/queues/", "queues", {}),
    "jobs, ready (first page)": ("/tasks/jobs/?state=ready", "jobs", {}),
    "jobs, ready (page 2,000)": ("/tasks/jobs/?state=ready&cursor=0.100000", "jobs", {}),
    "jobs, dead": ("/tasks/jobs/?state=dead", "jobs", {}),
    "jobs, text filter matching none": ("/tasks/jobs/?state=ready&q=no-such-text", "jobs", {}),
    "job": (None, "job", {}),
    "workers": ("/tasks/workers/", "workers", {}),
    "periodic": ("/tasks/periodic/", "periodic", {}),
    "by task": ("/tasks/by-task/", "by_task", {}),
}
TIMES = 7  # renders of each page; the median counts
DEAD = 300


def render_times(job_id: str) -> dict[str, float]:
    """Each page's median render time (ms), as a superuser sees it."""
    from django.contrib.auth.models import User
    from django.test import RequestFactory

    from worker.dashboard import pages

    user = User(username="bench", is_active=True, is_staff=True, is_superuser=True)
    factory = RequestFactory()
    found = {}
    for name, (path, view, kwargs) in PAGES.items():
        if view == "job":
            path, kwargs = f"/tasks/jobs/{job_id}/", {"job_id": job_id}
        took = []
        for _ in range(TIMES):
            request = factory.get(path)
            request.user = user
            began = time.perf_counter()
            response = getattr(pages, view)(request, **kwargs)
            took.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, (name, response.status_code)
        found[name] = statistics.median(took)
    return found


async def dashboard_pages(harness: Any, jobs: int) -> dict[str, Any]:
    """Fill the default queue with ``jobs`` ready jobs (and DEAD dead letters, through a
    worker), time every page, then purge the queue."""
    from worker.ops.api import Ops

    ops = Ops(harness.backend)
    dead = [await harness.tasks.fails.aenqueue() for _ in range(DEAD)]
    # Their failures are meant: not logged (Django logs each at ERROR).
    quiet = {**harness.env, "TASKS_LOG_LEVEL": "CRITICAL"}
    worker = harness.start_worker("dashboard-dead", 50, env=quiet)
    try:
        deadline = time.monotonic() + 60
        while ops.dead_count("default") < DEAD:
            if time.monotonic() > deadline:
                raise TimeoutError("the dead letters were not made in 60 s")
            await asyncio.sleep(0.1)
    finally:
        harness.stop(worker)
    began = time.monotonic()
    await harness.enqueue_many(harness.tasks.noop, [], jobs)
    filled = time.monotonic() - began
    try:
        times = await asyncio.to_thread(render_times, dead[0].id)
    finally:
        await asyncio.to_thread(ops.purge, "default", True)
    slowest = max(times, key=times.__getitem__)
    return {"jobs": jobs, "fill_s": filled, "slowest_ms": times[slowest], "slowest": slowest,
            **{f"{name}_ms": ms for name, ms in times.items()}}  # fmt: skip

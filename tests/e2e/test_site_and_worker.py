"""End to end: the real site (uvicorn serving project.asgi) and the real worker
(``manage.py runworker``) as subprocesses, on a real Redis, with the fake order service and
report webhook served by the site itself.

The processes get a database of their own (tests/databases.py), migrated before they
start. The test observes over HTTP (status endpoint, report, webhook counters), and reads
that database with plain SQL only where no endpoint tells (the orders' notified_at), never
through the ORM.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobs.fake_services import PAGE_SIZE, PAGES
from tests.processes import project_env, runworker, start, stop, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TOTAL = PAGES * PAGE_SIZE
FINISHED = {"SUCCESSFUL", "FAILED"}


# -- the processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class System:
    base_url: str
    logs: dict[str, Path]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited early with {process.returncode}")

    def stop(self) -> dict[str, int]:
        """SIGTERM every process (the worker drains and exits); their exit codes."""
        for name, process in self.processes.items():
            if name not in self.exit_codes:
                try:
                    self.exit_codes[name] = stop(process, timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    self.exit_codes[name] = process.wait()
        return self.exit_codes

    def print_logs(self) -> None:
        # Captured by pytest: shown when the test fails.
        for name, log in self.logs.items():
            text = log.read_text(errors="replace") if log.exists() else "(no log)"
            print(f"\n===== {name} log ({log}) =====\n{text}")


@pytest.fixture
def system(redis_url, tasks_prefix, process_database, tmp_path) -> Iterator[System]:
    """The site and the worker, running against this test's Redis keys and database."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = project_env(
        REDIS_URL=redis_url,
        TASKS_PREFIX=tasks_prefix,
        DATABASE_URL=process_database.url,
        FAKE_SERVICES="1",
        ORDER_SERVICE_URL=f"{base_url}/fake/orders",
        REPORT_WEBHOOK_URL=f"{base_url}/fake/webhook",
    )
    logs = {name: tmp_path / f"{name}.log" for name in ("migrate", "site", "worker")}
    running = System(base_url, logs)
    try:
        migrate = start(["manage.py", "migrate", "--no-input", "-v", "0"], env, logs["migrate"])
        assert migrate.wait(60) == 0, "manage.py migrate failed"
        site = ["-m", "uvicorn", "project.asgi:application", "--host", "127.0.0.1"]
        site += ["--port", str(port), "--lifespan", "off"]
        running.processes["site"] = start(site, env, logs["site"])
        # No periodic jobs: a sync_orders fired at a 5-minute mark would change the counts.
        running.processes["worker"] = runworker(
            env, logs["worker"], "--no-scheduler", "--concurrency", "20"
        )

        def site_up() -> bool:
            running.check_alive()
            try:
                return httpx.get(f"{base_url}/fake/webhook", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(site_up, 15, "uvicorn to answer")
        yield running
    finally:
        running.stop()
        running.print_logs()


# -- the test --------------------------------------------------------------------------------


def follow(client: httpx.Client, status_url: str, timeout: float = 15) -> dict[str, Any]:
    """Poll a job's status URL until the job has finished; its last status."""

    def finished() -> dict[str, Any] | None:
        response = client.get(status_url)
        assert response.status_code == 200, response.text
        body = response.json()
        return body if body["status"] in FINISHED else None

    return wait_until(finished, timeout, f"the job at {status_url} to finish")


def stream(client: httpx.Client, url: str, headers: dict[str, str] | None = None) -> list[dict]:
    """The states a job's event stream sent, to its end (it ends when the job does)."""
    states = []
    with client.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        for line in response.iter_lines():
            if line.startswith("data: "):
                states.append(json.loads(line.removeprefix("data: ")))
    return states


def test_a_request_enqueues_and_the_worker_runs_the_jobs(system, process_database):
    with httpx.Client(base_url=system.base_url, timeout=5) as client:
        # Sync the orders: 202 with a status URL the worker's outcome shows up at.
        response = client.post("/jobs/sync-orders/")
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert accepted["status"] == "READY"
        assert response.headers["Location"] == accepted["status_url"]

        # Its event stream follows it to its end, then closes; the last event says it all.
        states = stream(client, f"{accepted['status_url']}events")
        job = states[-1]
        assert job["status"] == "SUCCESSFUL", job["errors"]
        assert job["progress"] == {"done": PAGES, "total": PAGES, "note": "pages fetched"}
        assert [s["status"] for s in states[:-1]] == sorted(
            (s["status"] for s in states[:-1]), key=["READY", "RUNNING"].index
        )  # each state once, in order (a state changes only with status or progress)
        # Reconnecting (Last-Event-ID) gives the final state again, and the stream ends.
        again = stream(client, f"{accepted['status_url']}events", {"Last-Event-ID": "1"})
        assert again == [job]
        assert client.get(f"{accepted['status_url']}?wait=10").json() == job
        assert job["task"] == "jobs.tasks.sync_orders" and job["attempts"] == 1
        assert job["return_value"] == {
            "fetched": TOTAL,
            "created": TOTAL,
            "updated": 0,
            "unchanged": 0,
        }
        assert len(job["worker_ids"]) == 1 and job["finished_at"] is not None

        # Each new order's post_save enqueued a notify_new_order, which the worker ran.
        def all_notified() -> bool:
            system.check_alive()
            return (
                process_database.scalar(
                    "SELECT COUNT(*) FROM jobs_order WHERE notified_at IS NOT NULL"
                )
                == TOTAL
            )

        wait_until(all_notified, 15, f"{TOTAL} orders notified")
        assert process_database.scalar("SELECT COUNT(*) FROM jobs_order") == TOTAL

        # A report over those orders, delivered to the webhook exactly once.
        response = client.post("/reports/")
        assert response.status_code == 202, response.text
        accepted = response.json()
        job = follow(client, accepted["status_url"])
        assert job["status"] == "SUCCESSFUL", job["errors"]
        assert job["queue"] == "reports" and job["args"] == [accepted["report_id"]]
        assert job["return_value"]["delivered"] is True
        assert job["return_value"]["order_count"] == TOTAL

        report = client.get(accepted["report_url"]).json()
        assert report["status"] == "delivered" and report["order_count"] == TOTAL
        assert report["delivered_at"] is not None and report["error"] == ""
        assert client.get("/fake/webhook").json() == {"deliveries": 1, "repeats": 0}

    # SIGTERM: the worker drains (nothing is in flight) and exits cleanly.
    codes = system.stop()
    assert codes["worker"] == 0, f"runworker exited with {codes['worker']}"

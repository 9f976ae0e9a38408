"""The cluster metrics view (/tasks/metrics): each queue's gauges for a scraper with the
bearer token or a staff session, nothing for anyone else, and a number of Redis commands
per scrape that does not grow with the number of jobs."""

import asyncio
import copy
import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.tasks import TaskResultStatus
from django.test import AsyncClient
from django.utils import timezone

from tests.engine import tasks
from tests.metrics.conftest import parse, value

URL = "/tasks/metrics"
OURS = ("cmdstat_config", "cmdstat_info")  # the test's own commands, around the scrape
TOKEN = "s3cret-token"


@pytest.fixture
def token(settings) -> str:
    entry = copy.deepcopy(settings.TASKS)
    entry["default"]["OPTIONS"]["metrics_token"] = TOKEN
    settings.TASKS = entry
    return TOKEN


async def scrape(**headers: str) -> dict:
    response = await AsyncClient().get(URL, headers={"Authorization": f"Bearer {TOKEN}",
                                                     **headers})  # fmt: skip
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.content.decode())


async def until(condition, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not (found := await condition()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
    return found


async def test_the_gauges_of_each_queue(token, run_worker):
    before = time.time()
    tasks.add.using(queue_name="reports").enqueue_many([((1, 2), {})] * 3)  # served by none
    later = timezone.now() + timedelta(hours=1)
    tasks.add.using(queue_name="reports", run_after=later).enqueue_many([((1, 2), {})] * 2)
    async with run_worker(queues=["default"], grace=0.5):
        dead, retrying = tasks.permanent.enqueue(), tasks.fails_then_waits.enqueue()
        sleeper = tasks.sleeper.enqueue(30)

        async def settled():
            for result in (dead, retrying, sleeper):
                await result.arefresh()
            return (dead.status == TaskResultStatus.FAILED and retrying.attempts == 1
                    and sleeper.status == TaskResultStatus.RUNNING)  # fmt: skip

        await until(settled)

        async def aged():  # the head of the ready list of reports waits since its enqueue
            got = await scrape()
            return got if _gauge(got, "oldest_ready_age_seconds", "reports") > 0.2 else None

        got = await until(aged)
        ages_bound = time.time() - before
        assert _gauge(got, "oldest_ready_age_seconds", "reports") <= ages_bound + 0.05
        assert _gauge(got, "oldest_ready_age_seconds", "default") == 0  # nothing ready
        assert [_gauge(got, g, "reports") for g in ("ready", "delayed", "retrying")] == [3, 2, 0]
        assert [_gauge(got, g, "default") for g in ("dead", "delayed", "retrying")] == [1, 1, 1]
        assert _gauge(got, "running", "default") == 1 and _gauge(got, "running", "reports") == 0
        assert _gauge(got, "live_workers", "default") == 1
        assert _gauge(got, "live_workers", "reports") == 0
        assert value(got, "worker_live_workers") == 1
        # Every queue of QUEUES is shown, work or not.
        assert _gauge(got, "ready", "other") == 0 and _gauge(got, "live_workers", "other") == 0
        assert ("worker_queue_ready", (("queue", "other"),)) in got


def _gauge(samples, name: str, queue: str) -> float:
    return value(samples, f"worker_queue_{name}", queue=queue)


async def test_without_the_token_the_view_refuses(token):
    client = AsyncClient()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await client.get(URL, headers=headers)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"worker_queue" not in response.content
    assert (await client.get(URL, headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200


async def test_no_token_set_opens_the_view_to_no_bearer(settings):
    response = await AsyncClient().get(URL, headers={"Authorization": "Bearer "})
    assert response.status_code == 401


async def test_an_unknown_backend_is_not_found_and_said_so_only_to_a_reader(token):
    response = await AsyncClient().get(
        URL, {"backend": "nope"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 404
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = await AsyncClient().get(URL, {"backend": "nope"}, headers=headers)
        assert response.status_code == 401
        assert b"nope" not in response.content


class Directory:
    """An authentication backend of users known without a database (the test uses none):
    1 is staff, 2 is not."""

    def get_user(self, user_id):
        from django.contrib.auth.models import User

        user_id = int(user_id)
        return User(pk=user_id, username=f"user{user_id}", is_staff=user_id == 1)

    async def aget_user(self, user_id):
        return self.get_user(user_id)


def with_missing(present: list[str], *wanted: str) -> list[str]:
    """``present`` with those of ``wanted`` it lacks added, in order (a settings module that
    installs them already, as the reference site's does, must not get them twice)."""
    return [*present, *(name for name in wanted if name not in present)]


@pytest.fixture
def sessions(settings):
    """django.contrib.auth and sessions (in signed cookies) on the site."""
    settings.INSTALLED_APPS = with_missing(
        django_settings.INSTALLED_APPS, "django.contrib.auth", "django.contrib.sessions"
    )
    settings.MIDDLEWARE = with_missing(
        django_settings.MIDDLEWARE,
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    )
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    settings.AUTHENTICATION_BACKENDS = [f"{__name__}.Directory"]


async def signed_in(user_id: int) -> AsyncClient:
    """A client holding the session of user ``user_id``, as Django's login leaves it."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.signed_cookies import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user_id)
    session[BACKEND_SESSION_KEY] = f"{__name__}.Directory"
    session[HASH_SESSION_KEY] = Directory().get_user(user_id).get_session_auth_hash()
    await session.asave()
    client = AsyncClient()
    client.cookies[django_settings.SESSION_COOKIE_NAME] = session.session_key
    return client


async def test_a_staff_session_opens_the_view_and_another_user_is_forbidden(sessions, token):
    staff = await signed_in(1)
    response = await staff.get(URL)
    assert response.status_code == 200
    assert b"worker_queue_ready" in response.content
    clerk = await signed_in(2)
    response = await clerk.get(URL)
    assert response.status_code == 403
    assert b"worker_queue" not in response.content


async def test_commands_per_scrape_do_not_grow_with_the_jobs(private_redis, settings):
    entry = copy.deepcopy(settings.TASKS)
    entry["default"]["OPTIONS"]["metrics_token"] = TOKEN
    settings.TASKS = entry
    tasks.add.enqueue(1, 1)
    await scrape()  # the scripts loaded, the connections open

    async def commands_of_a_scrape() -> int:
        private_redis.config_resetstat()
        await scrape()
        stats = private_redis.info("commandstats")
        return sum(s["calls"] for name, s in stats.items() if name not in OURS)

    few = await commands_of_a_scrape()
    tasks.add.enqueue_many([((1, n), {}) for n in range(3000)])
    later = timezone.now() + timedelta(hours=1)
    tasks.add.using(run_after=later).enqueue_many([((1, n), {}) for n in range(1500)])
    tasks.add.using(queue_name="reports").enqueue_many([((1, n), {}) for n in range(2000)])
    many = await commands_of_a_scrape()
    # Fewer, if anything: with over 1,000 delayed, their retries are not counted.
    assert many <= few < 50

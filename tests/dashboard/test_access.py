"""Who may see and do what in the dashboard: staff only, two permissions, a read-only
setting, CSRF on every action, a strict CSP on every page, every action logged."""

import logging
import re

import pytest
from django.test import Client

from worker.dashboard.access import ACT, VIEW
from worker.ops.api import Ops

pytestmark = pytest.mark.django_db

PAGES = ["/tasks/", "/tasks/queues/", "/tasks/workers/", "/tasks/jobs/", "/tasks/periodic/",
         "/tasks/by-task/", "/tasks/queues/default/purge"]  # fmt: skip


def token(client: Client, page: str = "/tasks/queues/") -> str:
    """The CSRF token a page's forms carry."""
    html = client.get(page).content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def test_an_anonymous_visitor_is_sent_to_the_admin_login_page():
    for page in [*PAGES, "/tasks/events"]:
        response = Client().get(page)
        assert response.status_code == 302
        assert response["Location"] == f"/admin/login/?next={page}"
    assert Client().post("/tasks/queues/default/pause").status_code in (302, 403)


def test_users_without_staff_status_or_the_permission_get_403(make_user):
    for user in [make_user("plain", staff=False, perms=[VIEW, ACT]), make_user("staffer")]:
        client = Client()
        client.force_login(user)
        assert client.get("/tasks/").status_code == 403
        assert client.get("/tasks/jobs/").status_code == 403


def test_a_viewer_sees_every_page_without_actions_and_cannot_act(make_user, backend):
    viewer = Client()  # no CSRF check: the permission alone refuses
    viewer.force_login(make_user("viewer", perms=[VIEW]))
    for page in PAGES:
        response = viewer.get(page)
        assert response.status_code == 200, page
        assert b'method="post"' not in response.content, page
    assert viewer.post("/tasks/queues/default/pause").status_code == 403
    assert Ops(backend).paused() == {}


def test_an_action_needs_the_csrf_token_and_is_logged(actor_client, backend, caplog):
    ops = Ops(backend)
    assert actor_client.post("/tasks/queues/default/pause").status_code == 403
    assert ops.paused() == {}
    csrf = token(actor_client)
    with caplog.at_level(logging.INFO, logger="worker.dashboard"):
        response = actor_client.post("/tasks/queues/default/pause", {"csrfmiddlewaretoken": csrf})
    assert response.status_code == 302 and response["Location"] == "/tasks/queues/"
    assert set(ops.paused()) == {"default"}
    assert [r.getMessage() for r in caplog.records if r.name == "worker.dashboard"] == [
        "actor: pause queue default"
    ]
    assert actor_client.get("/tasks/queues/default/pause").status_code == 405  # POST only


def test_read_only_hides_every_action_and_refuses_them(make_user, backend, settings):
    settings.TASKS_DASHBOARD = {"read_only": True}
    boss = Client()  # no CSRF check: read-only alone refuses
    boss.force_login(make_user("boss", superuser=True))
    for page in PAGES:
        response = boss.get(page)
        assert b'method="post"' not in response.content, page
        assert b"read-only" in response.content
    assert boss.post("/tasks/queues/default/pause").status_code == 403
    assert Ops(backend).paused() == {}


def test_every_page_carries_a_strict_content_security_policy(admin_client):
    for page in PAGES:
        response = admin_client.get(page)
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy, page
        assert "unsafe-inline" not in policy
        html = response.content.decode()
        assert "<script>" not in html and " style=" not in html and "<style" not in html, page


def test_the_setting_is_checked(settings):
    from worker.dashboard.checks import dashboard_setup

    settings.TASKS_DASHBOARD = {"read_only": "yes", "colour": "red"}
    assert [e.msg for e in dashboard_setup()] == [
        "TASKS_DASHBOARD['read_only'] must be a bool, not 'yes'",
        "TASKS_DASHBOARD has no option 'colour' (options: 'backend', 'read_only')",
    ]
    settings.TASKS_DASHBOARD = {"backend": "nope"}
    assert [e.msg for e in dashboard_setup()] == [
        "TASKS_DASHBOARD['backend']: TASKS has no backend 'nope' (it has: default)"
    ]

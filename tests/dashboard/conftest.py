"""Users of every kind for the dashboard's tests, and jobs for it to show."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from worker.dashboard.access import ACT, VIEW


def _permission(name: str) -> Permission:
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


@pytest.fixture
def make_user(db):
    """``make_user(name, staff=..., superuser=..., perms=[...])``: a user with password "pw"."""

    def make(name: str, *, staff: bool = True, superuser: bool = False, perms=()) -> User:
        user = User.objects.create_user(name, password="pw", is_staff=staff,
                                        is_superuser=superuser)  # fmt: skip
        user.user_permissions.add(*[_permission(p) for p in perms])
        return user

    return make


@pytest.fixture
def admin_client(make_user) -> Client:
    """A superuser's client, checking CSRF tokens as a browser's requests are checked."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("boss", superuser=True))
    return client


@pytest.fixture
def actor_client(make_user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("actor", perms=[VIEW, ACT]))
    return client

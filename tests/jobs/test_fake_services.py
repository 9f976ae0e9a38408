import importlib

import pytest
from django.test import AsyncClient
from django.urls import clear_url_caches

import project.urls
from jobs.fake_services import PAGE_SIZE, PAGES
from jobs.models import WebhookDelivery
from jobs.order_service import _parse_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.jobs.fake_urls")]


@pytest.fixture
def client() -> AsyncClient:
    return AsyncClient()


async def test_fake_orders_are_deterministic_pages_the_client_accepts(client):
    pages = [(await client.get("/fake/orders", {"page": p})).json() for p in range(1, PAGES + 1)]

    again = [(await client.get("/fake/orders", {"page": p})).json() for p in range(1, PAGES + 1)]
    assert pages == again
    ids = [o["id"] for page in pages for o in page["orders"]]
    assert len(set(ids)) == len(ids) == PAGES * PAGE_SIZE
    assert all(_parse_page(page)["pages"] == PAGES for page in pages)


@pytest.mark.parametrize(("page", "status"), [("0", 404), (str(PAGES + 1), 404), ("x", 400)])
async def test_fake_orders_refuse_bad_pages(client, page, status):
    assert (await client.get("/fake/orders", {"page": page})).status_code == status


async def test_fake_webhook_stores_a_report_once_per_idempotency_key(client):
    def post(key: str, body: dict):
        return client.post(
            "/fake/webhook", body, content_type="application/json", headers={"Idempotency-Key": key}
        )

    first = await post("k1", {"report_id": 1})
    repeat = await post("k1", {"report_id": 1})
    other = await post("k2", {"report_id": 2})

    assert (first.status_code, first.json()["duplicate"]) == (201, False)
    assert (repeat.status_code, repeat.json()) == (
        200,
        {"id": first.json()["id"], "duplicate": True},
    )
    assert other.status_code == 201
    assert (await client.get("/fake/webhook")).json() == {"deliveries": 2, "repeats": 1}
    stored = await WebhookDelivery.objects.aget(idempotency_key="k1")
    assert stored.payload == {"report_id": 1}


async def test_fake_webhook_needs_a_key_and_json(client):
    no_key = await client.post("/fake/webhook", {"a": 1}, content_type="application/json")
    not_json = await client.post(
        "/fake/webhook", "{", content_type="application/json", headers={"Idempotency-Key": "k"}
    )

    assert (no_key.status_code, not_json.status_code) == (400, 400)
    assert await WebhookDelivery.objects.acount() == 0


@pytest.mark.parametrize("enabled", [True, False])
def test_the_site_mounts_fakes_only_when_enabled(settings, enabled):
    original = settings.FAKE_SERVICES
    settings.FAKE_SERVICES = enabled
    try:
        routes = [str(p.pattern) for p in importlib.reload(project.urls).urlpatterns]
        assert ("fake/" in routes) is enabled
    finally:
        settings.FAKE_SERVICES = original
        importlib.reload(project.urls)
        clear_url_caches()

"""Client of the external order service: GET <ORDER_SERVICE_URL>?page=N answers
``{"orders": [{"id", "customer", "total", "status"}, ...], "pages": K}``.

Failures worth retrying (timeouts, connection errors, 5xx, 408/429) propagate as httpx
errors so the engine retries the job; anything retrying cannot fix raises
OrderServiceError, a PermanentFailure, which fails the job at once.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from django.conf import settings

from jobs.models import Order
from worker import PermanentFailure

# Client errors that say "later", not "never".
RETRYABLE_4XX = frozenset({408, 425, 429})
# A page count beyond this is a broken service, not a big shop: refuse it rather than open
# that many requests.
MAX_PAGES = 1000
# Order.total has 12 digits, 2 of them decimals.
MAX_TOTAL = Decimal("1e10")


class OrderServiceError(PermanentFailure):
    """The order service refused the request or answered something that is not orders."""


@dataclass(frozen=True, slots=True)
class RemoteOrder:
    external_id: str
    customer: str
    total: Decimal
    status: str


def client_timeout() -> httpx.Timeout:
    # No pool limit: pages wait for a free connection of the bounded pool, and each request is
    # bounded by connect/read anyway; the engine's job timeout bounds the whole run.
    read = float(getattr(settings, "ORDER_SERVICE_TIMEOUT", 10.0))
    return httpx.Timeout(connect=min(read, 5.0), read=read, write=read, pool=None)


async def fetch_orders(
    url: str | None = None, on_page: Callable[[int, int], None] | None = None
) -> list[RemoteOrder]:
    """Every order the service has: page 1 first (it says how many pages), then the rest
    concurrently. An order listed twice (pages shifting under us) is kept once, last wins.
    ``on_page(done, pages)`` is called as each page comes in."""
    url = url or settings.ORDER_SERVICE_URL
    limits = httpx.Limits(max_connections=int(getattr(settings, "ORDER_SERVICE_CONNECTIONS", 8)))
    done = 0

    async def page_of(client: httpx.AsyncClient, page: int) -> dict[str, Any]:
        nonlocal done
        body = await _fetch_page(client, url, page)
        done += 1
        if on_page is not None:
            on_page(done, body["pages"])
        return body

    async with httpx.AsyncClient(timeout=client_timeout(), limits=limits) as client:
        first = await page_of(client, 1)
        rest = await _gather_or_cancel(
            page_of(client, page) for page in range(2, first["pages"] + 1)
        )
    by_id = {}
    for body in (first, *rest):
        for order in body["orders"]:
            by_id[order.external_id] = order
    return list(by_id.values())


async def _gather_or_cancel[T](coros: Iterable[Awaitable[T]]) -> list[T]:
    # Plain gather leaves the other pages running after the first failure, against a client
    # that is about to close; TaskGroup would wrap the error in an ExceptionGroup, hiding a
    # PermanentFailure from the engine. So: gather, and on failure cancel and reap the rest.
    tasks = [asyncio.ensure_future(coro) for coro in coros]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _fetch_page(client: httpx.AsyncClient, url: str, page: int) -> dict[str, Any]:
    response = await client.get(url, params={"page": page})
    if 400 <= response.status_code < 500 and response.status_code not in RETRYABLE_4XX:
        raise OrderServiceError(
            f"order service answered {response.status_code} {response.reason_phrase} "
            f"for GET {response.url}: {response.text[:200]}"
        )
    response.raise_for_status()
    try:
        return _parse_page(response.json())
    except (ValueError, KeyError, TypeError, InvalidOperation) as e:
        raise OrderServiceError(
            f"order service sent a malformed page from GET {response.url}: {e!r}"
        ) from e


def _parse_page(body: Any) -> dict[str, Any]:
    pages = body["pages"]
    if not isinstance(pages, int) or not 1 <= pages <= MAX_PAGES:
        raise ValueError(f"'pages' must be a whole number from 1 to {MAX_PAGES}, got {pages!r}")
    orders = [
        RemoteOrder(
            external_id=str(item["id"]),
            customer=str(item["customer"]).strip(),  # see migration 0003
            total=_money(item["total"]),
            status=_status(item["status"]),
        )
        for item in body["orders"]
    ]
    return {"pages": pages, "orders": orders}


def _money(value: Any) -> Decimal:
    # Via str so a JSON float like 19.99 becomes Decimal("19.99"), not its binary expansion.
    amount = Decimal(str(value))
    if not amount.is_finite() or abs(amount) >= MAX_TOTAL:
        raise ValueError(f"total {value!r} is not an amount an order can have")
    return amount.quantize(Decimal("0.01"))


def _status(value: Any) -> str:
    if value not in Order.Status.values:
        raise ValueError(f"unknown order status {value!r}")
    return value

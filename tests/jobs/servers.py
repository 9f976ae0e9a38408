"""Local HTTP servers for the tests: uvicorn in a thread serving small scripted ASGI apps that
play the external order service and report webhook, faults included."""

import asyncio
import json
import socket
import threading
import time
from collections import defaultdict
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from jobs.fake_services import PAGES, fake_page

# Longer than any client timeout the tests set, so a stalled answer is never seen.
STALL_SECONDS = 1.5


class LocalServer:
    """Serve ``app`` on 127.0.0.1 at a free port, in a thread with its own event loop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self.base_url = ""

    def __enter__(self) -> "LocalServer":
        # Bound here, before the server starts, so there is no window for another process to
        # take the port.
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, lifespan="off", log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("local test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server and self.thread
        # Stalled handlers would hold a graceful shutdown for their whole sleep.
        self.server.force_exit = True
        self.server.should_exit = True
        self.thread.join(10)


async def _send_json(send: Any, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class OrderService:
    """GET /orders?page=N with the fake service's pages. ``faults[page]`` lists what the next
    requests for that page get, one entry each: "stall" (no answer in time), "slow" (answers
    after 0.2 s) or an HTTP status code; an empty list means a normal answer."""

    def __init__(self) -> None:
        self.pages = {page: fake_page(page) for page in range(1, PAGES + 1)}
        self.faults: dict[int, list[str | int]] = defaultdict(list)
        self.requests: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        query = parse_qs(scope["query_string"].decode())
        page = int(query.get("page", ["1"])[0])
        self.requests.append(page)
        fault = self.faults[page].pop(0) if self.faults[page] else None
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if fault == "stall":
                await asyncio.sleep(STALL_SECONDS)
            elif fault == "slow":
                await asyncio.sleep(0.2)
            elif isinstance(fault, int):
                await _send_json(send, fault, {"error": f"scripted {fault}"})
                return
            if page not in self.pages:
                await _send_json(send, 404, {"error": f"no page {page}"})
                return
            await _send_json(send, 200, self.pages[page])
        finally:
            self.in_flight -= 1


class WebhookReceiver:
    """POST receiver that keeps every request and dedupes by Idempotency-Key, as a careful
    real receiver would. ``faults`` lists what the next requests get: "lose" (processed, but
    the answer never arrives in time) or an HTTP status code (refused, not processed)."""

    def __init__(self) -> None:
        self.faults: list[str | int] = []
        self.requests: list[tuple[str | None, Any]] = []
        self.accepted: dict[str, Any] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        key = headers.get("idempotency-key")
        body = json.loads(await _read_body(receive))
        self.requests.append((key, body))
        fault = self.faults.pop(0) if self.faults else None
        if isinstance(fault, int):
            await _send_json(send, fault, {"error": f"scripted {fault}"})
            return
        if key is not None:
            self.accepted.setdefault(key, body)
        if fault == "lose":
            await asyncio.sleep(STALL_SECONDS)
        await _send_json(send, 200, {"ok": True})

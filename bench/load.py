"""A small HTTP load generator, used by bench/run.py when ``wrk`` is not installed.

    python bench/load.py URL [--connections 32] [--seconds 5]

Keeps ``--connections`` requests in flight (one httpx client, one connection each) for
``--seconds`` and prints JSON: requests, errors, seconds, requests_per_s. Being Python, it
tops out at a few thousand requests/s on one core: with it the web figures measure the
load generator as much as the site (install wrk for real figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time

import httpx


def answers(process: subprocess.Popen, url: str, status: int, seconds: float) -> bool:
    """Whether the server ``process`` started answers ``url`` with ``status`` within
    ``seconds`` (False as soon as it exits)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == status:
                return True
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            return False
        time.sleep(0.1)
    return False


async def hammer(url: str, connections: int, seconds: float) -> dict:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    counts = {"ok": 0, "errors": 0}
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        end = time.monotonic() + seconds

        async def one_connection() -> None:
            while time.monotonic() < end:
                try:
                    response = await client.get(url)
                    counts["ok" if response.status_code == 200 else "errors"] += 1
                except httpx.HTTPError:
                    counts["errors"] += 1

        began = time.monotonic()
        await asyncio.gather(*(one_connection() for _ in range(connections)))
        elapsed = time.monotonic() - began
    return {
        "requests": counts["ok"],
        "errors": counts["errors"],
        "seconds": elapsed,
        "requests_per_s": counts["ok"] / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(hammer(args.url, args.connections, args.seconds))))


if __name__ == "__main__":
    main()

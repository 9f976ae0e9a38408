"""The other process of the latency floor (bench/run.py): BLPOP a list, note time.time() as
soon as it returns, push that time on the reply list, again; "ready" once connected.

    python bench/floor.py REDIS_URL REQUESTS REPLIES

Runs until terminated, or 30 s without a request.
"""

import sys
import time

import redis


def main() -> None:
    url, requests, replies = sys.argv[1:4]
    client = redis.Redis.from_url(url)
    client.rpush(replies, "ready")
    while client.blpop([requests], timeout=30) is not None:
        woke = time.time()
        client.rpush(replies, repr(woke))


if __name__ == "__main__":
    main()

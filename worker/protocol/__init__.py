"""The Redis protocol (docs/protocol.md). Nothing outside this package sends a Redis command
or knows a key's layout.

- ``keys``: key names and job ids;
- ``records``: what crosses the wire (a new job, a lease, an outcome);
- ``message``: the JSON message of a job, encoded at enqueue and checked at decode;
- ``scripts`` (and ``lua/``): the Lua scripts, loaded in one place;
- ``broker``: the connections, one ``Queue`` per queue, the commands that span queues;
- ``queue``: every command about one queue's jobs;
- ``enqueue``, ``fastredis``, ``connection``: how new jobs, the hot path and the rest reach
  Redis; ``servers``: redis-server processes (the embedded server, tests, benchmarks).
"""

from worker.protocol.broker import Broker
from worker.protocol.queue import Queue

__all__ = ["Broker", "Queue"]

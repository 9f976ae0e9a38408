"""Tasks the engine's tests run (a module of the test suite, imported by the tests)."""

import asyncio
import os
import threading
import time

from django.tasks import default_task_backend, task

from worker import PermanentFailure

calls: list[tuple[str, object]] = []


@task()
async def add(a: int, b: int) -> int:
    return a + b


@task()
def add_sync(a: int, b: int) -> int:
    return a + b


@task(priority=0)
async def record(label: str) -> str:
    calls.append(("record", label))
    return label


@task(max_attempts=3, backoff=0.05, backoff_max=0.1)
async def flaky(key: str, fail_times: int) -> int:
    """Fails its first ``fail_times`` attempts."""
    n = sum(1 for name, k in calls if name == "flaky" and k == key) + 1
    calls.append(("flaky", key))
    if n <= fail_times:
        raise ConnectionError(f"attempt {n} failed")
    return n


@task(max_attempts=5, backoff=0.01)
async def permanent() -> None:
    raise PermanentFailure("the order service said 404")


@task(max_attempts=2, backoff=600, backoff_max=600)
async def fails_then_waits() -> None:
    """Fails; its retry is due ten minutes later (a job that stays retrying)."""
    raise ConnectionError("the retry waits")


@task(max_attempts=1, timeout=0.2)
async def slow_async(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@task(max_attempts=1, timeout=0.2)
def slow_sync(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


@task(takes_context=True)
async def with_context(context, tag: str) -> dict:
    return {"tag": tag, "attempt": context.attempt, "id": context.task_result.id}


@task()
async def bad_return() -> object:
    return {1, 2}


@task()
async def db_job() -> bool:
    """Queries the database; returns whether a connection was already open (left over)."""
    from asgiref.sync import sync_to_async
    from django.db import connection

    def work() -> bool:
        was_open = connection.connection is not None
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return was_open

    return await sync_to_async(work)()


@task(max_attempts=2)
def crash_worker() -> None:
    """Kills the process running it, every time: a poison job."""
    import os

    os._exit(3)


@task(unique_for=60)
async def unique_add(a: int, b: int = 0) -> int:
    return a + b


@task(timeout=None)
async def sleeper(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke"


@task()
async def echo(value: object) -> object:
    return value


@task(max_attempts=2, backoff=0.01)
async def cancels_itself() -> None:
    """Raises CancelledError of its own (as a cancelled and awaited sub-task does)."""
    inner = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    inner.cancel()
    await inner


@task(max_attempts=2, backoff=0.5)
async def fails_once(key: str) -> int:
    """Fails its first attempt (after a moment, so its worker is idle again by then); the
    retry is due 0.25 to 0.5 s later."""
    n = sum(1 for name, k in calls if name == "fails_once" and k == key) + 1
    calls.append(("fails_once", key))
    if n == 1:
        await asyncio.sleep(0.05)
        raise ConnectionError("the first attempt fails")
    return n


@task(timeout=None)
async def counted_sleep(label: str, seconds: float) -> str:
    """Counts its runs in ``calls``, then sleeps: a job long enough for leases to matter."""
    calls.append(("counted_sleep", label))
    await asyncio.sleep(seconds)
    return label


# Events a test running a worker in process sets to let ``fails_once_when_released`` go on.
gates: dict[str, asyncio.Event] = {}


@task(max_attempts=2, backoff=0.5)
async def fails_once_when_released(key: str) -> int:
    """Its first attempt waits for ``gates[key]``, then fails (the retry is due 0.25 to
    0.5 s later); the second succeeds."""
    n = sum(1 for name, k in calls if name == "fails_once_when_released" and k == key) + 1
    calls.append(("fails_once_when_released", key))
    if n == 1:
        await gates[key].wait()
        raise ConnectionError(f"{key}: the first attempt fails")
    return n


@task()
def where_it_runs() -> dict[str, object]:
    """Where a sync task runs: its thread (id and name), and whether an event loop runs
    there."""
    try:
        asyncio.get_running_loop()
        loop_here = True
    except RuntimeError:
        loop_here = False
    thread = threading.current_thread()
    return {"thread_id": thread.ident, "thread": thread.name, "loop_here": loop_here}


def tally_key() -> str:
    return f"{default_task_backend.broker.keys.prefix}:tests:tally"


@task(max_attempts=5)
async def tally(label: str, seconds: float = 0.0) -> None:
    """Counts its runs per label in Redis, so a test of worker processes can count lost and
    repeated jobs."""
    if seconds:
        await asyncio.sleep(seconds)
    await default_task_backend.broker.aclient().hincrby(tally_key(), label, 1)


def tallies() -> dict[str, int]:
    """Runs so far per label."""
    counts = default_task_backend.broker.sync.hgetall(tally_key())
    return {k.decode(): int(v) for k, v in counts.items()}


@task(max_attempts=2, backoff=0.01)
async def open_missing() -> None:
    """Fails on a file name read from disk that is not UTF-8 (a lone surrogate in Python)."""
    raise FileNotFoundError(f"no such file: {os.fsdecode(b'caf\xe9.txt')}")


@task()
async def name_from_disk() -> str:
    return os.fsdecode(b"caf\xe9.txt")


@task(result_ttl=0)
async def add_forgotten(a: int, b: int) -> int:
    """Keeps no result: its record goes when it succeeds."""
    return a + b


@task(result_ttl=0, max_attempts=1)
async def fail_forgotten() -> None:
    raise ValueError("no result is kept, but a dead letter is")


@task(result_ttl=60)
async def add_kept_a_minute(a: int, b: int) -> int:
    return a + b


# Flow control: tasks that record in Redis how many of them run at once (the highest count
# seen too) and when each attempt started (its lease's time, on Redis's clock), so a test
# can check a limit across worker processes.

_ENTER = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if n > tonumber(redis.call('HGET', KEYS[1], 'max:' .. ARGV[1]) or '0') then
  redis.call('HSET', KEYS[1], 'max:' .. ARGV[1], n)
end
redis.call('RPUSH', KEYS[2], ARGV[2])
"""


def flow_key(name: str) -> str:
    return f"{default_task_backend.broker.keys.prefix}:tests:flow:{name}"


async def _running(group: str, context, seconds: float) -> None:
    client = default_task_backend.broker.aclient()
    started = context.task_result.last_attempted_at.timestamp()
    await client.eval(_ENTER, 2, flow_key("running"), flow_key(f"starts:{group}"),
                      group, repr(started))  # fmt: skip
    try:
        await asyncio.sleep(seconds)
    finally:
        await client.hincrby(flow_key("running"), group, -1)


def flow_record() -> tuple[dict[str, int], dict[str, list[float]]]:
    """(the highest number running at once per group, the start times per group)."""
    client = default_task_backend.broker.sync
    counts = {k.decode(): int(v) for k, v in client.hgetall(flow_key("running")).items()}
    highest = {k[4:]: v for k, v in counts.items() if k.startswith("max:")}
    starts = {}
    for key in client.scan_iter(flow_key("starts:*")):
        group = key.decode().rpartition(":starts:")[2]
        starts[group] = sorted(float(t) for t in client.lrange(key, 0, -1))
    return highest, starts


@task(concurrency_limit=3, takes_context=True, timeout=None)
async def limited(context, label: str, seconds: float) -> str:
    await _running("limited", context, seconds)
    return label


@task(rate_limit="50/s", takes_context=True)
async def rated(context, label: str) -> str:
    await _running("rated", context, 0)
    return label


@task(concurrency_limit=1, limit_key="customer", takes_context=True, timeout=None)
async def per_customer(context, customer: str, seconds: float) -> str:
    await _running(f"customer:{customer}", context, seconds)
    return customer


@task(max_attempts=1, takes_context=True)
async def throttled(context, label: str) -> int:
    """Raises RateLimited on its first run (per label), as for an HTTP 429; returns the
    attempt it succeeded on."""
    from worker import RateLimited

    runs = await default_task_backend.broker.aclient().hincrby(flow_key("throttled"), label, 1)
    if runs == 1:
        raise RateLimited(retry_after=0.3)
    return context.attempt


@task(concurrency_limit=3, takes_context=True, timeout=None)
async def hangs_once(context, label: str, seconds: float) -> str:
    """As ``limited`` (in a group of its own), but only a first attempt sleeps ``seconds``:
    a job whose worker was killed runs at once where it is handed on."""
    await _running("hangs_once", context, seconds if context.attempt == 1 else 0)
    return label


def flow_forget(group: str) -> None:
    """Forget the running count of ``group`` and its highest: the attempts of a killed
    worker never counted themselves out."""
    default_task_backend.broker.sync.hdel(flow_key("running"), group, f"max:{group}")


@task(max_attempts=1)
async def fails_with(message: str) -> None:
    """Fails for good, with ``message`` as its error (user data in a traceback)."""
    raise PermanentFailure(message)


@task(takes_context=True, max_attempts=2, backoff=0)
async def reports_progress(context, pages: int, fail_first: bool = False) -> int:
    """Reports each page as done, in a tight loop, and counts its attempts in its
    metadata; with ``fail_first``, its first attempt fails once its metadata is set."""
    context.metadata["attempts"] = context.metadata.get("attempts", 0) + 1
    for page in range(pages):
        context.report_progress(page + 1, pages, note=f"page {page + 1}")
    if fail_first and context.attempt == 1:
        raise RuntimeError("first attempt fails")
    return pages


@task(takes_context=True)
def reports_progress_sync(context, pages: int) -> int:
    for page in range(pages):
        context.report_progress(page + 1, pages)
    context.metadata["from"] = "a thread"
    context.save_metadata()
    return pages


@task(takes_context=True)
async def reports_too_much(context) -> None:
    context.metadata["blob"] = "x" * 10_000


@task(takes_context=True, timeout=None)
async def reports_then_waits(context, key: str) -> None:
    """Reports half done, then waits until ``key`` is set in Redis."""
    await context.areport_progress(1, 2, note="halfway")
    client = default_task_backend.broker.aclient()
    while True:
        if await client.exists(key):
            return
        await asyncio.sleep(0.01)


@task(takes_context=True)
async def checkpoints(context) -> dict:
    """Saves a checkpoint, then asks to run again later (RateLimited) once: its rerun, the
    same attempt, starts from the checkpoint."""
    from worker import RateLimited

    if "cursor" not in context.metadata:
        context.metadata["cursor"] = 5
        await context.asave_metadata()
        raise RateLimited(retry_after=0.1)
    return dict(context.metadata)


# Workflows (tests/engine/test_workflows.py)


@task()
async def concat(previous: str, suffix: str) -> str:
    calls.append(("concat", suffix))
    return previous + suffix


@task()
async def gather(values: list, failed: list | None = None) -> dict:
    """A group's callback: what it was given."""
    calls.append(("gather", values))
    return {"values": values, "failed": failed}


@task()
async def adds_to_batch(batch_id: str, more: int) -> int:
    """A job of a batch that adds ``more`` jobs to it while it runs."""
    from worker.workflows import Batch

    batch = Batch.get(batch_id)
    for i in range(more):
        await batch.aenqueue(record, f"added-{i}")
    return more


# Workflows under faults (tests/faults/test_workflows.py): steps and callbacks that count
# their runs in Redis, as ``tally`` does, and pass values on.


@task(max_attempts=5)
async def tally_value(label: str, value: object, seconds: float = 0.0) -> object:
    """``tally``, returning ``value``: a step whose runs are counted."""
    await tally.acall(label, seconds)
    return value


@task(queue_name="reports", max_attempts=5)
async def tally_taking(previous: object, label: str) -> object:
    """Counts its runs as ``tally`` does and returns what it took of the steps before it.
    On a queue of its own: a test may serve it by a worker it never kills."""
    await tally.acall(label)
    return previous

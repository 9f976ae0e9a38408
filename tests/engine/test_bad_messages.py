"""Messages that cannot run are dead-lettered with a clear reason, and the worker goes on.
Nothing in a message makes the worker import a module or run anything but a registered task."""

import json
import sys

import pytest
from django.tasks import TaskResultStatus
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine import tasks
from tests.engine.helpers import finished
from worker.ops.api import Ops
from worker.protocol import keys, message
from worker.protocol.message import Call, Rejected

LIMIT = 1024 * 1024


def inject(backend, payload: bytes) -> str:
    """Queue a raw message, as a foreign or corrupted producer might."""
    job_id = keys.new_job_id("default")
    client = backend.broker.sync
    client.hset(backend.broker.keys.job(job_id), mapping={"m": payload, "n": 3})
    client.rpush(backend.broker.keys.ready("default"), job_id)
    return job_id


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x80not json{", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"args": []}', "names no task"),
        (b'{"task": "os.system", "args": ["touch /tmp/pwned"]}', "'os.system' is not registered"),
        (b'{"task": "tests.engine.tasks.add", "args": [1]}', "missing a required argument"),
        (b'{"task": "tests.engine.tasks.add", "args": {"a": 1}}', "'args' must be a list"),
        (b'{"task": "tests.engine.tasks.add", "args": [1, 2], "x": "' + b"y" * LIMIT + b'"}',
         "over the limit"),
    ],
)  # fmt: skip
async def test_bad_message_is_dead_lettered_with_its_reason(backend, run_worker, payload, reason):
    bad = inject(backend, payload)
    good = await tasks.add.aenqueue(1, 2)
    async with run_worker():
        await finished(good)
        result = await wait_dead(backend, bad)
    assert good.return_value == 3
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class_path == "worker.exceptions.MessageRejected"
    assert reason in error.traceback
    assert bad in [record.id for record in Ops(backend).dead("default")]


async def wait_dead(backend, job_id):
    import asyncio

    for _ in range(200):
        record = await asyncio.to_thread(Ops(backend).job, job_id)
        if record.status == TaskResultStatus.FAILED:
            return record
        await asyncio.sleep(0.02)
    raise AssertionError(f"{job_id} was not dead-lettered")


async def test_an_id_whose_job_is_gone_is_skipped(backend, run_worker):
    backend.broker.sync.rpush(backend.broker.keys.ready("default"), "default:gone")
    good = await tasks.add.aenqueue(1, 2)
    async with run_worker():
        await finished(good)
    assert backend.broker.queue("default").sizes("ready") == [0]


def test_decoding_never_imports_what_a_message_names():
    assert "antigravity" not in sys.modules
    with pytest.raises(Rejected, match="not registered"):
        message.decode(b'{"task": "antigravity.geohash", "args": []}', LIMIT)
    assert "antigravity" not in sys.modules


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
task_names = (
    st.sampled_from(["tests.engine.tasks.add", "tests.engine.tasks.with_context", "os.system", ""])
    | st.text()
)
messages = st.fixed_dictionaries(
    {"task": task_names | json_values},
    optional={"args": json_values | st.lists(json_values), "kwargs": json_values},
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300) | messages.map(lambda m: json.dumps(m).encode()))
def test_decoder_yields_a_call_or_a_clear_rejection(body):
    try:
        call = message.decode(body, LIMIT)
    except Rejected as e:
        assert str(e)
    else:
        assert isinstance(call, Call)
        assert call.task.module_path.startswith("tests.engine.tasks.")


@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, max_size=3), st.dictionaries(st.text(max_size=5), json_values))
def test_whatever_enqueue_accepts_the_worker_decodes(args, kwargs):
    try:
        _, _, body, _ = message.encode(tasks.add, args, kwargs, LIMIT)
    except Exception as e:
        assert type(e).__name__ == "InvalidArguments"
        return
    call = message.decode(body, LIMIT)
    assert (call.args, call.kwargs) == (args, kwargs)

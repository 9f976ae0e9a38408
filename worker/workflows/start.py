"""Enqueuing a workflow: its canvas planned, each step's call checked and encoded as an
enqueue would, then stored: made visible whole by one atomic call (lua/start.lua), a large
one's first steps written ahead out of sight (lua/stage.lua)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from django.db import transaction
from django.tasks import Task as DjangoTask
from django.tasks.exceptions import InvalidTask

from worker import pending
from worker.exceptions import Cancelled
from worker.protocol.keys import new_job_id
from worker.protocol.records import class_path, error_json
from worker.protocol.workflows import NewStep, NewWorkflow
from worker.task import Task
from worker.workflows.canvas import Part
from worker.workflows.handle import Workflow, redis_backend
from worker.workflows.plan import plan

if TYPE_CHECKING:
    from worker.backend import RedisBackend
    from worker.protocol.records import NewJob
    from worker.task import Result

# The error a step records when its workflow stops before it ran.
STOPPED = error_json(class_path(Cancelled), "its workflow ended before this step ran")
# A workflow's record is kept as long as results are, and an hour at least: its status is
# what a caller that waited for it reads next.
KEPT_AT_LEAST = 3600


def start(part: Part) -> Workflow:
    workflow, flow, backend, prepared = _prepared(part)
    what = f"enqueue workflow {flow.id}"
    when_committed(backend, what, lambda: backend.broker.workflows.start(flow), prepared)
    return workflow


async def astart(part: Part) -> Workflow:
    workflow, flow, backend, prepared = _prepared(part)
    workflows = backend.broker.workflows
    what = f"enqueue workflow {flow.id}"
    await awhen_committed(
        backend, what, lambda: workflows.start(flow), lambda: workflows.astart(flow), prepared
    )
    return workflow


def when_committed(
    backend: RedisBackend, what: str, send: Callable[[], object],
    prepared: list[tuple[Result, NewJob]] | None = None,
) -> None:  # fmt: skip
    """``send`` now, or, inside a transaction, when it commits (not at all if it rolls
    back), as an enqueue is sent; meanwhile ``get_result`` finds the ``prepared`` jobs
    READY, as it finds a job enqueued in the transaction."""

    def sending() -> None:
        with backend.reaching_redis(what):
            send()

    if pending.in_transaction():
        transaction.on_commit(_Sending(backend, prepared or [], sending), robust=False)
    else:
        sending()


class _Sending(pending.Send):
    """A workflow's or a batch's call waiting for the commit: a ``pending.Send``, so that
    its jobs are found meanwhile (worker/pending.py), that makes that call."""

    __slots__ = ("call",)

    def __init__(
        self, backend: RedisBackend, prepared: list[tuple[Result, NewJob]],
        call: Callable[[], None],
    ) -> None:  # fmt: skip
        super().__init__(backend, prepared)
        self.call = call

    def __call__(self) -> None:
        if not self.sent:
            self.sent = True
            self.call()


async def awhen_committed(
    backend: RedisBackend, what: str, send: Callable[[], object],
    asend: Callable[[], Awaitable[object]], prepared: list[tuple[Result, NewJob]] | None = None,
) -> None:  # fmt: skip
    """``asend()`` now; or, as RedisBackend.aenqueue does, inside a transaction open on
    this thread's own connection (a sync atomic() around async_to_sync is another
    thread's), ``send`` when it commits."""
    if pending.in_transaction():
        when_committed(backend, what, send, prepared)
    else:
        with backend.reaching_redis(what):
            await asend()


def backend_of(tasks: Iterable[DjangoTask[Any, Any]]) -> RedisBackend:
    """The one Redis backend every task given uses, or InvalidTask saying why not."""
    backends = {task.get_backend() for task in tasks}
    if len(backends) != 1:
        raise InvalidTask("every step of a workflow must use the same TASKS backend")
    return redis_backend(backends.pop())


def keep_ms(backend: RedisBackend) -> int:
    return int(max(backend.result_ttl, KEPT_AT_LEAST) * 1000)


def _prepared(
    part: Part,
) -> tuple[Workflow, NewWorkflow, RedisBackend, list[tuple[Result, NewJob]]]:
    laid_out = plan(part)
    backend = backend_of([node.step.task for node in laid_out.nodes if node.step])
    steps, ids, prepared = [], [], []
    for index, node in enumerate(laid_out.nodes, 1):
        after, kept = laid_out.after[index - 1], laid_out.kept(index)
        if node.step is None:  # a join: no job
            steps.append(NewStep(None, len(node.before), after, "", False, False))
            continue
        task = cast(Task, node.step.task)  # a RedisBackend's tasks are
        if task.idempotency_key is not None or task.unique_for is not None:
            raise InvalidTask(
                f"{task.module_path}: a unique task cannot be a workflow step (its workflow "
                "decides when it runs, once)"
            )
        if node.step.takes_result and task.limit_key is not None:
            raise InvalidTask(
                f"{task.module_path}: a step taking a result cannot have a limit_key (its "
                "limit group is set at enqueue, before the result exists)"
            )
        takes = laid_out.takes(index)
        incoming = (node.step.takes_result, takes.split(" ")[0].endswith("f"))
        result, job = backend.prepare(task, node.step.args, node.step.kwargs, incoming)
        prepared.append((result, job))
        continues = node.policy == "continue"
        steps.append(NewStep(job, len(node.before), after, takes, continues, kept))
        ids.append(job.id)
    flow = NewWorkflow(new_job_id(ids[0].partition(":")[0]), "w", keep_ms(backend), STOPPED, steps)
    ends = [last.id for i in laid_out.ends() if (last := steps[i - 1].job) is not None]
    workflow = Workflow(flow.id, backend.alias, tuple(ids), tuple(ends))
    return workflow, flow, backend, prepared

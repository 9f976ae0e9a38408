"""Enqueuing a workflow: its canvas planned, each step's call checked and encoded as an
enqueue would, then all of it stored in one atomic call (lua/start.lua)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
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

# The error a step records when its workflow stops before it ran.
STOPPED = error_json(class_path(Cancelled), "its workflow ended before this step ran")
# A workflow's record is kept as long as results are, and an hour at least: its status is
# what a caller that waited for it reads next.
KEPT_AT_LEAST = 3600


def start(part: Part) -> Workflow:
    workflow, flow, backend = _prepared(part)
    workflows = backend.broker.workflows
    if pending.in_transaction():
        transaction.on_commit(lambda: _send(backend, flow, workflows.start))
    else:
        _send(backend, flow, workflows.start)
    return workflow


async def astart(part: Part) -> Workflow:
    workflow, flow, backend = _prepared(part)
    with backend.reaching_redis(f"enqueue workflow {flow.id}"):
        await backend.broker.workflows.astart(flow)
    return workflow


def _send(backend: RedisBackend, flow: NewWorkflow, store: Callable[[NewWorkflow], None]) -> None:
    with backend.reaching_redis(f"enqueue workflow {flow.id}"):
        store(flow)


def backend_of(tasks: Iterable[DjangoTask[Any, Any]]) -> RedisBackend:
    """The one Redis backend every task given uses, or InvalidTask saying why not."""
    backends = {task.get_backend() for task in tasks}
    if len(backends) != 1:
        raise InvalidTask("every step of a workflow must use the same TASKS backend")
    return redis_backend(backends.pop())


def keep_ms(backend: RedisBackend) -> int:
    return int(max(backend.result_ttl, KEPT_AT_LEAST) * 1000)


def _prepared(part: Part) -> tuple[Workflow, NewWorkflow, RedisBackend]:
    laid_out = plan(part)
    backend = backend_of([node.step.task for node in laid_out.nodes])
    steps, ids = [], []
    for index, node in enumerate(laid_out.nodes, 1):
        task = cast(Task, node.step.task)  # a RedisBackend's tasks are
        if task.idempotency_key is not None or task.unique_for is not None:
            raise InvalidTask(
                f"{task.module_path}: a unique task cannot be a workflow step (its workflow "
                "decides when it runs, once)"
            )
        takes = laid_out.takes(index)
        incoming = (node.step.takes_result, takes.split(" ")[0].endswith("f"))
        _, job = backend.prepare(task, node.step.args, node.step.kwargs, incoming)
        continues = node.policy == "continue"
        after, kept = laid_out.after[index - 1], laid_out.kept(index)
        steps.append(NewStep(job, len(node.before), after, takes, continues, kept))
        ids.append(job.id)
    flow = NewWorkflow(new_job_id(steps[0].job.queue), "w", keep_ms(backend), STOPPED, steps)
    ends = [ids[i - 1] for i in laid_out.ends()]
    return Workflow(flow.id, backend.alias, tuple(ids), tuple(ends)), flow, backend

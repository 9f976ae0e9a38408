"""What a workflow is made of: steps (a task and its arguments), chains (one after
another) and groups (side by side), nested as deep as needed. Frozen values: a canvas is
built, then enqueued (``enqueue`` / ``aenqueue``), as many times as wanted."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from django.tasks import Task as DjangoTask

if TYPE_CHECKING:
    from worker.workflows.handle import Workflow

Policy = Literal["fail", "continue"]
POLICIES: tuple[Policy, ...] = ("fail", "continue")


def _policy(value: str | None) -> Policy | None:
    if value is not None and value not in POLICIES:
        raise ValueError(f"on_failure must be 'fail' or 'continue', not {value!r}")
    return value


class Part:
    """A step, a chain or a group: what can be enqueued as a workflow, or put in one."""

    failure: Policy | None

    def then(self, *parts: Part) -> Chain:
        """This, then ``parts`` one after another (a group's callback: ``group.then(step)``
        runs once every step of the group has ended)."""
        if isinstance(self, Chain) and self.failure is None:  # flat, however long it grows
            return Chain((*self.parts, *_checked(parts)))
        return Chain((self, *_checked(parts)))

    def enqueue(self) -> Workflow:
        """Store the whole workflow in Redis in one atomic call and start it (inside a
        transaction: when it commits)."""
        from worker.workflows.start import start

        return start(self)

    async def aenqueue(self) -> Workflow:
        from worker.workflows.start import astart

        return await astart(self)


@dataclass(frozen=True, slots=True, eq=False)
class Step(Part):
    """A call of a task in a workflow."""

    task: DjangoTask[Any, Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    takes_result: bool = False
    failure: Policy | None = None

    def taking_result(self) -> Step:
        """Pass this step the return value of the step before it as its first argument
        (of the steps of a group before it: a list of their values, in order)."""
        return replace(self, takes_result=True)

    def on_failure(self, policy: Policy) -> Step:
        """What the workflow does when this step fails for good (its retries spent):
        ``"fail"`` (cancel the steps not started) or ``"continue"``."""
        return replace(self, failure=_policy(policy))


@dataclass(frozen=True, slots=True, eq=False)
class Chain(Part):
    """Parts that run one after another: each starts once the one before has succeeded."""

    parts: tuple[Part, ...]
    failure: Policy | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Group(Part):
    """Parts that run side by side."""

    parts: tuple[Part, ...]
    failure: Policy | None = None


def step(task: DjangoTask[Any, Any], /, *args: Any, **kwargs: Any) -> Step:
    """A step calling ``task(*args, **kwargs)``."""
    if not isinstance(task, DjangoTask):
        raise TypeError(f"step() takes a task (a function decorated with @task), not {task!r}")
    return Step(task, args, kwargs)


def chain(*parts: Part, on_failure: Policy | None = None) -> Chain:
    """``parts`` one after another. ``on_failure``: the policy of its steps that set none
    (the default, and that of the whole workflow, is ``"fail"``)."""
    if not parts:
        raise ValueError("chain() needs at least one step")
    return Chain(_checked(parts), _policy(on_failure))


def group(parts: Iterable[Part], /, on_failure: Policy | None = None) -> Group:
    """``parts`` side by side."""
    if isinstance(parts, Part):
        raise TypeError("group() takes a list of parts: group([step(...), step(...)])")
    members = _checked(tuple(parts))
    if not members:
        raise ValueError("group() needs at least one step")
    return Group(members, _policy(on_failure))


def _checked(parts: tuple[Part, ...]) -> tuple[Part, ...]:
    for part in parts:
        if not isinstance(part, Part):
            raise TypeError(
                f"a workflow is made of step(), chain() and group(), not {part!r} "
                "(wrap a task in step(task, *args))"
            )
    return parts

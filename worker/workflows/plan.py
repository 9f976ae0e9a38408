"""A canvas (worker/workflows/canvas.py) laid out as the graph Redis keeps: steps numbered
from 1 in the order written, each with the steps it waits for, those whose values it takes
and the failure policy it runs under. Where several steps would each wait for the same
several steps (a group after a group), they wait for one join instead (a node with no
job): the graph grows as the steps do, not as their product."""

from __future__ import annotations

from dataclasses import dataclass

from worker.workflows.canvas import Chain, Group, Part, Policy, Step


@dataclass(frozen=True, slots=True)
class Node:
    step: Step | None  # None: a join
    policy: Policy
    before: tuple[int, ...]  # the steps (or join) it waits for
    sources: tuple[int, ...]  # the steps whose values it would take (through a join)
    as_list: bool  # it takes their values as a list (it follows a group)


@dataclass(frozen=True, slots=True)
class Plan:
    nodes: list[Node]
    after: list[tuple[int, ...]]  # per node, the nodes that wait for it
    taken: frozenset[int]  # the steps whose values a step takes

    def takes(self, index: int) -> str:
        """What node ``index`` (from 1) takes of those before it, as lua/workflow.lua's
        input() reads it: "" nothing; "v k" a value, "l k1 k2" a list, with an "f" when
        one of those may fail without stopping the workflow (then it is told which did)."""
        node = self.nodes[index - 1]
        if node.step is None or not node.step.takes_result:
            return ""
        kind = "l" if node.as_list else "v"
        if any(self.nodes[k - 1].policy == "continue" for k in node.sources):
            kind += "f"
        return f"{kind} {' '.join(map(str, node.sources))}"

    def kept(self, index: int) -> bool:
        """Whether a step takes node ``index``'s return value."""
        return index in self.taken

    def ends(self) -> list[int]:
        """The steps no other waits for: the workflow is over when they are."""
        return [i for i, after in enumerate(self.after, 1) if not after]


def plan(part: Part) -> Plan:
    nodes: list[Node] = []

    def add(node: Node) -> int:
        nodes.append(node)
        return len(nodes)

    def place(
        part: Part, before: tuple[int, ...], sources: tuple[int, ...], as_list: bool,
        policy: Policy,
    ) -> tuple[tuple[int, ...], bool]:  # fmt: skip
        """Place ``part`` after ``before``; the steps it ends with, and whether their
        values make a list."""
        policy = part.failure or policy
        if isinstance(part, Step):
            if part.takes_result and not sources:
                raise ValueError(
                    f"step({part.task.name}) takes the result of the step before it, "
                    "but no step comes before it"
                )
            return (add(Node(part, policy, before, sources, as_list)),), False
        if isinstance(part, Chain):
            for member in part.parts:
                sources, as_list = place(member, before, sources, as_list, policy)
                before = sources
            return sources, as_list
        assert isinstance(part, Group)
        if len(before) > 1 and len(part.parts) > 1:
            before = (add(Node(None, "fail", before, (), False)),)
        ends: list[int] = []
        for member in part.parts:
            ends.extend(place(member, before, sources, as_list, policy)[0])
        return tuple(ends), True

    place(part, (), (), False, "fail")
    after: list[list[int]] = [[] for _ in nodes]
    for index, node in enumerate(nodes, 1):
        for k in node.before:
            after[k - 1].append(index)
    taken = {k for node in nodes if node.step and node.step.takes_result for k in node.sources}
    return Plan(nodes, [tuple(a) for a in after], frozenset(taken))

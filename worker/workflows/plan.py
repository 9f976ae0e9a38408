"""A canvas (worker/workflows/canvas.py) laid out as the graph Redis keeps: steps numbered
from 1 in the order written, each with the steps it waits for, what it takes of them and
the failure policy it runs under."""

from __future__ import annotations

from dataclasses import dataclass

from worker.workflows.canvas import Chain, Group, Part, Policy, Step


@dataclass(frozen=True, slots=True)
class Node:
    step: Step
    policy: Policy
    before: tuple[int, ...]  # the steps it waits for
    as_list: bool  # it takes their values as a list (it follows a group)


@dataclass(frozen=True, slots=True)
class Plan:
    nodes: list[Node]
    after: list[tuple[int, ...]]  # per node, the steps that wait for it

    def takes(self, index: int) -> str:
        """What node ``index`` (from 1) takes of those before it, as lua/workflow.lua's
        input() reads it: "" nothing; "v k" a value, "l k1 k2" a list, with an "f" when
        one of those may fail without stopping the workflow (then it is told which did)."""
        node = self.nodes[index - 1]
        if not node.step.takes_result:
            return ""
        kind = "l" if node.as_list else "v"
        if any(self.nodes[k - 1].policy == "continue" for k in node.before):
            kind += "f"
        return f"{kind} {' '.join(map(str, node.before))}"

    def kept(self, index: int) -> bool:
        """Whether a step takes node ``index``'s return value."""
        return any(self.nodes[k - 1].step.takes_result for k in self.after[index - 1])

    def ends(self) -> list[int]:
        """The steps no other step waits for: the workflow is over when they are."""
        return [i for i, after in enumerate(self.after, 1) if not after]


def plan(part: Part) -> Plan:
    nodes: list[Node] = []

    def place(
        part: Part, before: tuple[int, ...], as_list: bool, policy: Policy
    ) -> tuple[tuple[int, ...], bool]:
        policy = part.failure or policy
        if isinstance(part, Step):
            if part.takes_result and not before:
                raise ValueError(
                    f"step({part.task.name}) takes the result of the step before it, "
                    "but no step comes before it"
                )
            nodes.append(Node(part, policy, before, as_list))
            return (len(nodes),), False
        if isinstance(part, Chain):
            for member in part.parts:
                before, as_list = place(member, before, as_list, policy)
            return before, as_list
        assert isinstance(part, Group)
        ends: tuple[int, ...] = ()
        for member in part.parts:
            ends += place(member, before, as_list, policy)[0]
        return ends, True

    place(part, (), False, "fail")
    after: list[list[int]] = [[] for _ in nodes]
    for index, node in enumerate(nodes, 1):
        for k in node.before:
            after[k - 1].append(index)
    return Plan(nodes, [tuple(a) for a in after])

"""Workflows (chains and groups of steps, nested, with failure policies) and batches, on the
engine's own guarantees: see docs/workflows.md.

    from worker.workflows import chain, group, step

    flow = chain(step(sync_orders), step(send_report, day=day)).enqueue()
    group([step(resize, i) for i in ids]).then(step(make_zip).taking_result()).enqueue()
"""

from worker.workflows.batches import Batch, BatchEnded
from worker.workflows.canvas import Chain, Group, Part, Policy, Step, chain, group, step
from worker.workflows.handle import Progress, Workflow, WorkflowDoesNotExist, WorkflowStatus

__all__ = [
    "Batch",
    "BatchEnded",
    "Chain",
    "Group",
    "Part",
    "Policy",
    "Progress",
    "Step",
    "Workflow",
    "WorkflowDoesNotExist",
    "WorkflowStatus",
    "chain",
    "group",
    "step",
]

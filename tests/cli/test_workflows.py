"""``jobs workflow``: a workflow's or batch's status, progress and steps, its cancellation
(asked first), and the workflow a job belongs to in ``list`` and ``show``; on the real
Redis, the steps run by a real worker."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.tasks import default_task_backend

from tests.cli.conftest import run, run_json
from tests.engine import tasks
from tests.engine.helpers import waiting_for_work
from worker.ops.api import Ops
from worker.waiting import afinished
from worker.workflows import Batch, Workflow, chain, step

pytestmark = pytest.mark.django_db(transaction=True)

CHAIN = "tests.engine.tasks.record", "tests.engine.tasks.concat", "tests.engine.tasks.concat"


def three_steps():
    return chain(
        step(tasks.record, "a"),
        step(tasks.concat, "b").taking_result(),
        step(tasks.concat, "c").taking_result(),
    )


async def test_a_workflow_shows_its_status_progress_and_each_step(run_worker):
    workflow = await three_steps().aenqueue()
    shown = run_json("workflow", workflow.id)
    assert (shown["id"], shown["kind"], shown["status"]) == (workflow.id, "workflow", "RUNNING")
    assert (shown["ended"], shown["total"], shown["failed"], shown["ended_at"]) == (0, 3, 0, None)
    assert [(s["number"], s["job_id"], s["task_path"], s["status"]) for s in shown["steps"]] == [
        (1, workflow.steps[0], CHAIN[0], "READY"),  # on its queue
        (2, workflow.steps[1], CHAIN[1], "WAITING"),  # on no list, until the first has ended
        (3, workflow.steps[2], CHAIN[2], "WAITING"),
    ]

    async with run_worker(concurrency=4):
        await workflow.afinished(10)
    done = run_json("workflow", workflow.id)
    assert (done["status"], done["ended"], done["total"], done["failed"]) == ("SUCCEEDED", 3, 3, 0)
    assert [s["status"] for s in done["steps"]] == ["SUCCESSFUL"] * 3
    assert datetime.fromisoformat(done["ended_at"])

    text = run("workflow", workflow.id)
    assert text.exit_code == 0 and "\x1b[" not in text.stdout
    assert "status  SUCCEEDED" in text.stdout
    assert "progress  3 of 3 steps ended, 0 failed or cancelled" in text.stdout
    rows = [line.split() for line in text.stdout.splitlines() if line[:1].isdigit()]
    numbered = zip((1, 2, 3), workflow.steps, CHAIN, strict=True)
    assert rows == [[str(n), job_id, path, "SUCCESSFUL"] for n, job_id, path in numbered]

    first = run("workflow", workflow.id, "--limit", "1")
    assert workflow.steps[0] in first.stdout and workflow.steps[1] not in first.stdout
    assert first.stdout.endswith("... and 2 more step(s) (--limit)\n")


async def test_a_failed_step_shows_as_failed_and_the_rest_as_cancelled(run_worker):
    workflow = await chain(step(tasks.fails_with, "boom"), step(tasks.record, "never")).aenqueue()
    async with run_worker(concurrency=4):
        await workflow.afinished(10)
    shown = run_json("workflow", workflow.id)
    assert (shown["status"], shown["ended"], shown["failed"]) == ("FAILED", 2, 2)
    assert [s["status"] for s in shown["steps"]] == ["FAILED", "CANCELLED"]
    assert (
        "progress  2 of 2 steps ended, 2 failed or cancelled" in run("workflow", workflow.id).stdout
    )


async def test_list_and_show_name_the_workflow_of_a_job():
    plain = await tasks.add.aenqueue(1, 1)
    assert "WORKFLOW" not in run("list").stdout  # no column where no job has one
    workflow = await three_steps().aenqueue()

    first = run_json("show", workflow.steps[0])
    assert (first["workflow"], first["state"], first["waiting"]) == (workflow.id, "ready", False)
    second = run_json("show", workflow.steps[1])
    assert (second["workflow"], second["state"], second["waiting"]) == (
        workflow.id,
        "waiting",
        True,
    )
    assert run_json("show", plain.id)["workflow"] is None
    text = run("show", workflow.steps[1]).stdout
    assert f"workflow  {workflow.id}" in text
    assert "waiting for the steps before it in its workflow" in text

    listed = run("list", "--status", "ready").stdout.splitlines()
    assert listed[0].split()[-1] == "WORKFLOW"
    [step_row] = [line for line in listed if line.startswith(workflow.steps[0])]
    assert step_row.split()[-1] == workflow.id
    [plain_row] = [line for line in listed if line.startswith(plain.id)]
    assert workflow.id not in plain_row
    assert {j["id"]: j["workflow"] for j in run_json("list", "--status", "ready")} == {
        plain.id: None,
        workflow.steps[0]: workflow.id,
    }


async def test_cancel_asks_first_then_no_step_runs(run_worker, on_a_terminal):
    tasks.calls.clear()
    workflow = await three_steps().aenqueue()
    declined = run("workflow", workflow.id, "--cancel", input="n\n")
    assert declined.exit_code == 1
    assert f"Cancel workflow {workflow.id}? Of its 3 step(s) not ended" in declined.stdout
    assert run_json("workflow", workflow.id)["status"] == "RUNNING"

    accepted = run("workflow", workflow.id, "--cancel", input="y\n")
    assert accepted.exit_code == 0
    assert accepted.stdout.endswith(f"{workflow.id}: cancelled\n")
    shown = run_json("workflow", workflow.id)
    assert (shown["status"], shown["ended"], shown["failed"]) == ("CANCELLED", 3, 3)
    assert [s["status"] for s in shown["steps"]] == ["CANCELLED"] * 3
    async with run_worker(concurrency=4) as worker:
        await waiting_for_work(worker)
    assert tasks.calls == []

    again = run("workflow", workflow.id, "--cancel", "--yes")
    assert again.exit_code == 1
    assert again.stderr == f"{workflow.id}: already CANCELLED, nothing to cancel\n"


async def test_cancel_without_a_terminal_needs_yes():
    workflow = await three_steps().aenqueue()
    refused = run("workflow", workflow.id, "--cancel")
    assert refused.exit_code == 2 and "give --yes" in refused.stderr
    assert run_json("workflow", workflow.id)["status"] == "RUNNING"
    assert run("workflow", workflow.id, "--cancel", "--json").exit_code == 2
    assert run("workflow", workflow.id, "--cancel", "-y").stdout == f"{workflow.id}: cancelled\n"


async def test_an_unknown_workflow_is_one_line_and_exit_1(backend):
    workflow = await three_steps().aenqueue()
    missing = workflow.id[:-4] + "0000"
    for workflow_id in (missing, "not-an-id", workflow.steps[1]):
        for args in (["workflow", workflow_id], ["workflow", workflow_id, "--cancel", "-y"]):
            result = run(*args)
            assert result.exit_code == 1, args
            assert result.stderr.startswith(f"Error: unknown workflow id {workflow_id} "), args
    assert Ops(backend).workflow(workflow.id).progress.status == "RUNNING"


async def test_a_batch_shows_its_jobs_counted_and_its_callbacks(run_worker):
    batch = await Batch.aopen(on_complete=step(tasks.record, "all done"))
    jobs = [await batch.aenqueue(tasks.add, i, i) for i in range(2)]
    shown = run_json("workflow", batch.id)
    assert (shown["kind"], shown["closed"], shown["ended"], shown["total"]) == (
        "batch",
        False,
        0,
        2,
    )
    [callback] = shown["steps"]
    assert (callback["task_path"], callback["status"]) == ("tests.engine.tasks.record", "WAITING")
    assert run_json("show", jobs[0].id)["workflow"] == batch.id
    assert "kind  batch (open)" in run("workflow", batch.id).stdout

    await batch.aclose()
    async with run_worker(concurrency=4):
        await (await Workflow.aget(batch.id)).afinished(10)  # its jobs have ended
        await afinished(await default_task_backend.aget_result(callback["job_id"]), 10)
    done = run_json("workflow", batch.id)
    assert (done["status"], done["closed"], done["ended"], done["total"]) == (
        "SUCCEEDED",
        True,
        2,
        2,
    )
    assert [s["status"] for s in done["steps"]] == ["SUCCESSFUL"]
    text = run("workflow", batch.id).stdout
    assert "progress  2 of 2 jobs ended, 0 failed or cancelled" in text and "Callbacks" in text

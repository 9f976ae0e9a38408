"""Workflows under SIGKILL: a killed worker's steps run elsewhere within the lease, and the
end of a step releases what waits for it exactly once, even when the worker that ran the
step dies around its ack."""

import signal

from django.tasks import TaskResultStatus

from tests.engine import tasks
from tests.processes import stop, wait_until
from worker.ops.api import Ops
from worker.waiting import all_finished
from worker.workflows import WorkflowStatus, chain, group, step

WORKFLOWS, STEPS, KILLS = 200, 10, 3
# Short steps, many at once: the victim's acks follow one another, and a kill finds steps
# running and others ran whose outcomes are on their way. The survivor, slow, leaves the
# victim most of the drain, so that the drain outlasts three restarts.
STEP_SECONDS = 0.02
VICTIM = ("--concurrency", "50", "--queue", "default")
# The survivor serves the callbacks' queue too (tasks.tally_taking's), which no victim
# serves: a callback's own run is at-least-once, as any job's (test_sigkill.py), so only a
# callback no kill can reach may be counted exactly once, and then its count says whether
# the end of its group released it once.
EVERY_QUEUE = ("--queue", "default", "--queue", "reports")
SURVIVOR = ("--concurrency", "2", *EVERY_QUEUE)
ACKED = 50  # steps acked since the victim leased its first: it is past its start
LOST = ["worker.exceptions.WorkerLost"]


def worker_id(backend, process) -> str | None:
    assert process.poll() is None, process.log.read_text()[-2000:]
    return next((w.id for w in Ops(backend).workers() if w.pid == process.pid), None)


def leases(backend, worker: str) -> str:
    return backend.broker.keys.wip("default", worker)


def succeeded(backend) -> int:
    count = backend.broker.sync.hget(backend.broker.keys.stats("default"), "succeeded")
    return int(count or 0)


def ran_unstored(backend, worker: str, label: dict[str, str], caught: set[str]) -> set[str]:
    """The steps ``worker`` holds that have run (counted themselves) and were caught by no
    kill before (whose count could be an earlier run's): their outcomes are on their way."""
    client = backend.broker.sync
    held = [label[i.decode()] for i in client.hkeys(leases(backend, worker))]
    held = [s for s in held if s not in caught]
    counts = client.hmget(tasks.tally_key(), held) if held else []
    return {s for s, n in zip(held, counts, strict=True) if n is not None}


def kill_mid_ack(backend, process, label: dict[str, str], caught: set[str]) -> set[str]:
    """SIGKILL runworker ``process`` once it is past its start (ACKED steps done since it
    leased its first), at a moment it holds steps that have run; the steps it held (its
    leases stay until a live worker reaps them)."""
    client = backend.broker.sync
    worker = wait_until(lambda: worker_id(backend, process), 60, "the victim's heartbeat")
    wait_until(lambda: client.hlen(leases(backend, worker)), 30, "the victim to lease steps")
    mark = succeeded(backend)
    wait_until(lambda: succeeded(backend) >= mark + ACKED, 30, "the victim's acks")
    wait_until(lambda: ran_unstored(backend, worker, label, caught), 30,
               "the victim to hold steps that have run")  # fmt: skip
    process.send_signal(signal.SIGKILL)
    process.wait()
    return {label[job_id.decode()] for job_id in client.hkeys(leases(backend, worker))}


def errors(result) -> list[str]:
    return [e.exception_class_path for e in result.errors]


def test_groups_callbacks_are_released_once_while_workers_are_killed(backend, start_worker):
    flows = [
        group(
            [step(tasks.tally_value, f"{i}:{j}", [i, j], seconds=STEP_SECONDS)
             for j in range(STEPS)]
        ).then(step(tasks.tally_taking, f"{i}:callback").taking_result()).enqueue()
        for i in range(WORKFLOWS)
    ]  # fmt: skip
    label = {
        job_id: f"{i}:{j}" for i, f in enumerate(flows) for j, job_id in enumerate(f.steps[:STEPS])
    }
    survivor = start_worker(*SURVIVOR)
    victim = start_worker(*VICTIM)
    caught, acking = set(), set()
    for _ in range(KILLS):
        held = kill_mid_ack(backend, victim, label, caught)
        assert held, "each kill should catch steps in flight"
        acking |= (held - caught) & tasks.tallies().keys()  # they ran, unacked
        caught |= held
        victim = start_worker(*VICTIM)

    callbacks = [backend.get_result(flow.ends[0]) for flow in flows]
    all_finished(callbacks, 60)
    progress = [flow.progress() for flow in flows]
    assert stop(victim) == 0 and stop(survivor) == 0

    assert acking, "some kill should catch steps whose outcomes were not stored yet"
    assert {(p.status, p.ended, p.failed) for p in progress} == {
        (WorkflowStatus.SUCCEEDED, STEPS + 1, 0)
    }
    runs = tasks.tallies()
    steps = set(label.values())
    assert steps <= runs.keys()  # every step ran, at least once
    assert {s for s in steps if runs[s] > 1} <= caught  # again only if a kill caught it
    assert all(runs[s] > 1 for s in acking)
    assert {runs[f"{i}:callback"] for i in range(WORKFLOWS)} == {1}
    for i, callback in enumerate(callbacks):
        assert callback.status == TaskResultStatus.SUCCESSFUL
        assert (callback.attempts, callback.errors) == (1, [])
        assert callback.return_value == [[i, j] for j in range(STEPS)]


def test_a_chain_whose_middle_step_is_killed_completes_and_runs_its_last_step_once(
    backend, start_worker
):
    flow = chain(
        step(tasks.tally_value, "first", "a"),
        step(tasks.tally_value, "middle", "b", seconds=2),
        step(tasks.tally_taking, "last").taking_result(),
    ).enqueue()
    victim = start_worker("--concurrency", "4", *EVERY_QUEUE)
    middle = backend.get_result(flow.steps[1])
    wait_until(lambda: middle.refresh() or middle.status == TaskResultStatus.RUNNING, 30,
               "the middle step to start")  # fmt: skip
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert tasks.tallies() == {"first": 1}

    survivor = start_worker("--concurrency", "4", *EVERY_QUEUE)
    progress = flow.finished(30)
    assert stop(survivor) == 0
    assert progress.status == WorkflowStatus.SUCCEEDED
    middle.refresh()
    assert (middle.attempts, errors(middle)) == (2, LOST)  # the kill landed as it ran
    assert tasks.tallies() == {"first": 1, "middle": 1, "last": 1}
    last = backend.get_result(flow.steps[2])
    assert last.return_value == "b"

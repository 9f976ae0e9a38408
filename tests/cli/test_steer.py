"""retry, cancel, purge and enqueue: what they change in Redis, their confirmations and
their exit statuses."""

import subprocess
import sys

import orjson

from tests.cli.conftest import WORKER, run, run_json
from tests.engine import tasks
from tests.engine.helpers import finished
from tests.processes import ROOT, project_env


def state(job_id: str) -> str:
    return run_json("show", job_id)["state"]


def test_retry_dead_letters_by_id(jobs):
    result = run("retry", jobs.dead)
    assert (result.exit_code, result.stdout) == (0, "sent back 1 job(s)\n")
    assert state(jobs.dead) == "ready"

    again = run("retry", jobs.dead, jobs.successful)
    assert again.exit_code == 1
    assert f"{jobs.dead} is ready, not a dead letter: skipped" in again.stderr
    assert run("retry", "default:0000").stderr == "Error: unknown job id default:0000\n"
    assert run("retry").exit_code == 2  # neither ids nor --dead
    assert run("retry", jobs.dead, "--dead").exit_code == 2


async def test_retry_every_dead_letter_asks_first(jobs, backend, run_worker, on_a_terminal):
    more = [await tasks.permanent.using(queue_name="other").aenqueue() for _ in range(3)]
    async with run_worker(queues=["other"], scheduler=False):
        for job in more:
            await finished(job)
    declined = run("retry", "--dead", input="n\n")
    assert declined.exit_code == 1
    assert "Send back 4 dead letter(s) (1 in default, 3 in other)?" in declined.stdout
    assert [q["dead"] for q in run_json("status")["queues"]] == [1, 3, 0]

    only_add = run("retry", "--dead", "--task", "tests.engine.tasks.add", "--yes")
    assert only_add.stdout == "sent back 0 dead letter(s) of task tests.engine.tasks.add\n"
    one_queue = run("retry", "--dead", "--queue", "other", input="y\n")
    assert one_queue.exit_code == 0
    assert one_queue.stdout.endswith("sent back 3 dead letter(s)\n")
    assert {j["id"] for j in run_json("list", "-q", "other")} == {j.id for j in more}
    assert run("retry", "--dead", "--yes").stdout == "sent back 1 dead letter(s)\n"
    assert run("retry", "--dead", "--yes").stdout == "no dead letters\n"


async def test_cancel_queued_running_and_finished_jobs(jobs, backend):
    result = run("cancel", jobs.ready, jobs.delayed)
    assert result.exit_code == 0
    assert result.stdout == f"{jobs.ready}: cancelled\n{jobs.delayed}: cancelled\n"
    for job_id in (jobs.ready, jobs.delayed):
        shown = run_json("show", job_id)
        assert (shown["state"], shown["status"]) == ("cancelled", "FAILED")
        assert shown["errors"][-1]["exception_class_path"] == "worker.exceptions.Cancelled"
    # Never to run: a worker's fetch finds nothing.
    leases = (await backend.broker.queue("default").fetch(10, "w2")).leases
    assert leases == []
    assert run_json("status")["queues"][0]["counters"]["cancelled"] == 2

    running = run("cancel", jobs.running)
    assert running.stdout == f"{jobs.running}: running, cancellation requested\n"
    assert (
        backend.broker.sync.zscore(backend.broker.keys.cancel("reports"), jobs.running) is not None
    )
    assert run_json("show", jobs.running)["cancel_requested"] is not None
    assert run_json("show", jobs.running)["worker_ids"] == [WORKER]

    finished = run("cancel", jobs.successful)
    assert finished.exit_code == 1
    assert finished.stderr == f"{jobs.successful}: already SUCCESSFUL, nothing to cancel\n"
    assert run("cancel", "default:0000").exit_code == 1


def test_purge_asks_then_removes_queued_jobs_and_their_data(jobs, backend, on_a_terminal):
    declined = run("purge", "default", input="n\n")
    assert declined.exit_code == 1
    assert "Remove 1 ready, 1 delayed job(s) of queue default for good?" in declined.stdout
    assert state(jobs.ready) == "ready"

    purged = run("purge", "default", "--yes")
    assert (purged.exit_code, purged.stdout) == (0, "purged 2 job(s) from default\n")
    client = backend.broker.sync
    assert not client.exists(
        backend.broker.keys.job(jobs.ready), backend.broker.keys.job(jobs.delayed)
    )
    assert state(jobs.dead) == "dead"  # dead letters stay unless --dead

    with_dead = run("purge", "default", "--dead", input="y\n")
    assert with_dead.stdout.endswith("purged 1 job(s) from default\n")
    assert run("show", jobs.dead).exit_code == 1
    assert state(jobs.running) == "running"  # running jobs are left to finish
    assert run("purge", "default", "-y").stdout == "nothing to purge in default\n"
    unknown = run("purge", "nope", "--yes")
    assert unknown.exit_code == 2  # a usage error
    assert unknown.stderr.endswith(
        "Error: Invalid value for 'QUEUE': queue 'nope' is not in "
        "TASKS['default']['QUEUES'] (default, other, reports)\n"
    )


def test_destructive_commands_refuse_to_run_without_a_terminal_unless_yes(jobs, backend):
    for args in (["purge", "default"], ["purge", "default", "--dead"], ["retry", "--dead"]):
        refused = run(*args, input="y\n")  # piped input is no answer
        assert refused.exit_code == 2, args
        assert refused.stderr.endswith(
            "Error: this command asks for confirmation and stdin is not a terminal: give "
            "--yes to run it without asking\n"
        )
    assert (state(jobs.ready), state(jobs.delayed), state(jobs.dead)) == ("ready", "delayed",
                                                                         "dead")  # fmt: skip
    assert run("purge", "default", "--yes").stdout == "purged 2 job(s) from default\n"


def test_echo_y_into_manage_py_jobs_purge_purges_nothing(redis_url, tasks_prefix, backend):
    job = tasks.add.enqueue(1, 2)
    env = project_env(REDIS_URL=redis_url, TASKS_PREFIX=tasks_prefix)
    done = subprocess.run(
        [sys.executable, "manage.py", "jobs", "purge", "default"],
        cwd=ROOT, env=env, input="y\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "give --yes to run it without asking" in done.stderr
    assert backend.get_result(job.id).status == "READY"


def test_enqueue_by_task_path(backend):
    result = run("enqueue", "tests.engine.tasks.add", "--args", "[1, 2]")
    assert result.exit_code == 0
    job = run_json("show", result.stdout.strip())
    assert (job["state"], job["task_path"], job["args"]) == ("ready", "tests.engine.tasks.add",
                                                             [1, 2])  # fmt: skip

    options = ["--kwargs", '{"a": 1, "b": 2}', "-q", "reports", "--priority", "7"]
    later = run("enqueue", "tests.engine.tasks.add", *options, "--delay", "60")
    job = run_json("show", later.stdout.strip())
    assert (job["state"], job["queue"], job["priority"], job["kwargs"]) == (
        "delayed", "reports", 7, {"a": 1, "b": 2}
    )  # fmt: skip


def test_enqueue_errors_are_one_clear_line():
    failed = {  # exit 1: the enqueue was refused
        ("tests.engine.tasks.ad",): "no task 'tests.engine.tasks.ad' is registered in this "
        "project; did you mean tests.engine.tasks.add",
        ("add", "--args", "[1, 2]"): "did you mean tests.engine.tasks.add",
        ("tests.engine.tasks.add", "--args", "[1]"): "missing a required argument: 'b'",
    }
    for args, message in failed.items():
        result = run("enqueue", *args)
        assert result.exit_code == 1, args
        assert result.stderr.startswith("Error: ") and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1
    usage = {  # exit 2: a value on the command line is wrong
        ("--args", "[1,"): "Invalid value for --args: not valid JSON (",
        ("--kwargs", "[1]"): "Invalid value for --kwargs: must be a JSON object, not '[1]'",
        ("--args", "[1, 2]", "-q", "nope"): "Invalid value for '--queue' / '-q': queue 'nope' "
        "is not in TASKS['default']['QUEUES'] (default, other, reports)",
    }
    for args, message in usage.items():
        result = run("enqueue", "tests.engine.tasks.add", *args)
        assert result.exit_code == 2, args
        assert f"Error: {message}" in result.stderr, result.stderr
    assert orjson.loads(run("list", "--json").stdout) == []  # nothing was sent

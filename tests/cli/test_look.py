"""status, list and show, in text and --json, on real jobs in every state."""

from datetime import UTC, datetime, timedelta

from tests.cli.conftest import WORKER, run, run_json
from tests.engine import tasks
from worker.ops.api import STATES


def test_status_counts_each_state_and_shows_workers_and_schedules(jobs, backend):
    # A delayed job that has failed before is waiting to retry.
    backend.broker.sync.hset(backend.broker.keys.job(jobs.delayed), "a", 1)
    data = run_json("status")
    queues = {q["queue"]: q for q in data["queues"]}
    assert set(queues) == {"default", "reports", "other"}
    default, reports = queues["default"], queues["reports"]
    counts = [default[n] for n in ("ready", "held", "delayed", "retrying", "dead", "running")]
    assert counts == [1, 0, 1, 1, 1, 0]
    assert reports["running"] == 1
    assert default["counters"] == {"succeeded": 1, "retried": 0, "failed": 1, "lost": 0,
                                   "cancelled": 0, "deferred": 0}  # fmt: skip
    [worker] = data["workers"]
    assert (worker["id"], worker["pid"], worker["in_flight"]) == (WORKER, 4242, 1)
    for schedule in data["periodic"]:  # whatever the project declares
        assert datetime.fromisoformat(schedule["next_fire"])
        assert {"name", "task", "queue", "schedule"} <= set(schedule)

    text = run("status")
    assert text.exit_code == 0
    assert "\x1b[" not in text.stdout  # piped: no colours
    assert "cli-test-host" in text.stdout and "1h 0m" in text.stdout  # uptime
    lines = {line.split()[0]: line.split() for line in text.stdout.splitlines() if line}
    assert lines["default"][1:8] == ["1", "0", "0", "1", "1", "1", "1"]  # HELD after READY


def test_list_filters_by_state_queue_task_and_limit(jobs):
    every = run_json("list")
    assert {(j["state"], j["id"]) for j in every} == {
        ("ready", jobs.ready), ("delayed", jobs.delayed), ("running", jobs.running),
        ("dead", jobs.dead), ("successful", jobs.successful),
    }  # fmt: skip
    for state in set(STATES) - {"held"}:  # tests/engine/test_flow_control.py lists held ones
        [one] = run_json("list", "--status", state)
        assert one["id"] == getattr(jobs, state) and one["state"] == state
    assert [j["id"] for j in run_json("list", "--queue", "reports")] == [jobs.running]
    dead = run_json("list", "--task", "tests.engine.tasks.permanent")
    assert [(j["id"], j["errors"][0]["exception_class_path"]) for j in dead] == [
        (jobs.dead, "worker.exceptions.PermanentFailure")
    ]
    assert len(run_json("list", "--limit", "2")) == 2
    assert run_json("list", "--task", "no.such.task") == []

    text = run("list", "-s", "ready", "-s", "dead")
    assert text.exit_code == 0
    assert jobs.ready in text.stdout and jobs.dead in text.stdout
    assert jobs.delayed not in text.stdout
    assert run("list", "--status", "bogus").exit_code == 2


def test_show_a_job_in_each_state(jobs):
    dead = run_json("show", jobs.dead)
    assert (dead["state"], dead["status"], dead["attempts"]) == ("dead", "FAILED", 1)
    [error] = dead["errors"]
    assert error["exception_class_path"] == "worker.exceptions.PermanentFailure"
    assert "the order service said 404" in error["traceback"]

    done = run_json("show", jobs.successful)
    assert (done["state"], done["return_value"], done["args"]) == ("successful", 5, [2, 3])
    assert done["worker_ids"] and datetime.fromisoformat(done["finished_at"])

    delayed = run_json("show", jobs.delayed)
    assert delayed["state"] == "delayed" and datetime.fromisoformat(delayed["due"])
    assert run_json("show", jobs.running)["worker_ids"] == [WORKER]

    text = run("show", jobs.dead)
    assert text.exit_code == 0
    assert "tests.engine.tasks.permanent" in text.stdout
    assert "Error 1 of 1: worker.exceptions.PermanentFailure" in text.stdout
    assert "Traceback" in text.stdout


def test_show_says_what_the_job_reported_of_itself(jobs, backend):
    key = backend.broker.keys.job(jobs.running)
    backend.broker.sync.hset(key, mapping={"g": b'[3,4,"page 3"]', "d": b'{"source":"api"}'})

    shown = run_json("show", jobs.running)
    assert (shown["progress"], shown["metadata"]) == (
        {"done": 3, "total": 4, "note": "page 3"},
        {"source": "api"},
    )
    text = run("show", jobs.running).stdout
    assert "progress  3 of 4 (page 3)" in text
    assert 'metadata  {"source":"api"}' in text


def test_unknown_job_id_is_one_line_and_exit_1(jobs):
    for job_id in ("default:0000", "not-an-id"):
        result = run("show", job_id)
        assert result.exit_code == 1
        assert result.stderr == f"Error: unknown job id {job_id}\n"


TIMES = {"started_at", "seen_at", "next_fire", "enqueued_at", "run_after",
         "last_attempted_at", "finished_at", "due", "cancel_requested", "next_start"}  # fmt: skip


def times_in(data: object) -> list[object]:
    """Every value of a time field in ``data``, and every key that holds ms since the epoch."""
    found: list[object] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key in TIMES:
                found.append(value)
            elif key.endswith("_ms") and key != "window_ms":  # (a rate's window: a duration)
                found.append(f"{key}: epoch ms")
            else:
                found += times_in(value)
    elif isinstance(data, list):
        for value in data:
            found += times_in(value)
    return found


async def test_every_time_in_json_output_is_iso_8601_in_utc(jobs, backend):
    # A job held by a rate limit: its group's next start is a time too.
    limited = tasks.limited.module_path
    assert run("limit", limited, "--rate", "1/h", "-q", "default").exit_code == 0
    for label in ("first", "held"):
        await tasks.limited.aenqueue(label, 0)
    await backend.broker.queue("default").fetch(10, WORKER)

    outputs = [run_json(*args) for args in (["status"], ["list"], ["limits"])]
    outputs += [run_json("show", job_id) for job_id in (jobs.ready, jobs.delayed, jobs.running,
                                                        jobs.dead, jobs.successful)]  # fmt: skip
    found = times_in(outputs)
    assert len([t for t in found if t is not None]) >= 20
    for value in found:
        if value is not None:
            assert isinstance(value, str), value
            moment = datetime.fromisoformat(value)
            assert moment.utcoffset() == timedelta(0), value
    [worker] = outputs[0]["workers"]
    started = datetime.fromisoformat(worker["started_at"])
    assert timedelta(minutes=59) < datetime.now(UTC) - started < timedelta(minutes=61)
    [held] = [row for row in outputs[2] if row["task"] == limited and row["held"]]
    assert datetime.fromisoformat(held["next_start"]) > datetime.now(UTC) + timedelta(minutes=59)

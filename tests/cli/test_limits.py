"""``jobs limits`` and ``jobs limit``: an operator sees each limit group and changes a
task's (or one key's) limits for every worker."""

from tests.cli.conftest import run, run_json
from tests.engine import tasks

LIMITED = tasks.limited.module_path
PER_CUSTOMER = tasks.per_customer.module_path


async def test_limit_changes_a_tasks_limits_and_limits_shows_them(backend):
    queue = backend.broker.queue("default")
    await queue.flow.publish({LIMITED: tasks.limited.limits})  # as a worker does at start
    await tasks.limited.aenqueue("a", 0)

    result = run("limit", LIMITED, "--rate", "10/5s", "--concurrency", "none", "-q", "default")
    assert result.exit_code == 0, result.output
    assert f"{LIMITED}: changed in default" in result.stdout
    [row] = run_json("limits", "--task", LIMITED)
    assert (row["queue"], row["key"], row["source"]) == ("default", None, "task")
    assert row["limits"] == {"rate": {"count": 10, "window_ms": 5000}, "concurrency": None}

    text = run("limits", "--queue", "default").stdout
    [line] = [line for line in text.splitlines() if LIMITED in line]
    assert line.split()[2:6] == ["-", "10/5s", "-", "task"]

    assert run("limit", LIMITED, "--reset", "-q", "default").exit_code == 0
    [row] = run_json("limits", "--task", LIMITED)
    assert (row["source"], row["limits"]["concurrency"]) == ("declared", 3)


def test_limit_for_one_key_takes_json_or_text():
    result = run("limit", PER_CUSTOMER, "--key", "acme", "--concurrency", "5", "-q", "default")
    assert result.exit_code == 0, result.output
    [row] = [r for r in run_json("limits", "--task", PER_CUSTOMER) if r["key"]]
    assert (row["key"], row["source"], row["limits"]["concurrency"]) == ('"acme"', "key", 5)


def test_limit_refuses_what_cannot_be_with_the_reason():
    cases = [
        (["limit", LIMITED, "--rate", "often"], "is not a rate"),
        (["limit", LIMITED, "--concurrency", "-1"], "whole number >= 0"),
        (["limit", LIMITED, "--concurrency", "many"], "whole number or 'none'"),
        (["limit", LIMITED], "give a rate, a concurrency or reset"),
        (["limit", tasks.add.module_path, "--rate", "1/s"], "no flow control"),
        (["limit", "tests.engine.tasks.nope", "--rate", "1/s"], "no task"),
    ]
    for args, why in cases:
        result = run(*args)
        assert result.exit_code != 0 and why in result.output, (args, result.output)

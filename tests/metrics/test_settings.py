"""Where metrics are served is checked like any option, and a port runworker cannot serve
at stops it before it starts, naming the port."""

import copy
import socket

import pytest
from django.core.management import CommandError, call_command

from tests.engine.test_checks import configure, worker_messages


def test_a_bad_metrics_port_or_an_empty_token_is_e002(settings, tasks_prefix):
    configure(settings, tasks_prefix, {"url": "redis://h/0", "metrics_port": "h:99999",
                                       "metrics_token": ""})  # fmt: skip
    assert [(m.id, m.msg) for m in worker_messages()] == [
        ("worker.E002", "OPTIONS['metrics_port'] must be a port (1-65535) or 'host:port', not "
                        "'h:99999'"),
        ("worker.E002", "OPTIONS['metrics_token'] must not be empty (None: no token opens the "
                        "view)"),
    ]  # fmt: skip


@pytest.mark.parametrize("port", [9100, "9100", "127.0.0.1:9100", "[::1]:9100"])
def test_a_port_or_host_and_port_is_taken(settings, tasks_prefix, port):
    configure(settings, tasks_prefix, {"url": "redis://h/0", "metrics_port": port})
    assert worker_messages() == []


@pytest.fixture
def taken_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_runworker_refuses_a_port_it_cannot_serve_at(taken_port):
    with pytest.raises(CommandError, match=f"--metrics-port 127.0.0.1:{taken_port}: cannot serve"):
        call_command("runworker", "--metrics-port", f"127.0.0.1:{taken_port}")
    with pytest.raises(CommandError, match="--metrics-port: must be a port"):
        call_command("runworker", "--metrics-port", "nine")


def test_runworker_takes_its_port_from_the_settings(settings, taken_port):
    entry = copy.deepcopy(settings.TASKS)
    entry["default"]["OPTIONS"]["metrics_port"] = f"127.0.0.1:{taken_port}"
    settings.TASKS = entry
    with pytest.raises(CommandError, match=f"127.0.0.1:{taken_port}: cannot serve there"):
        call_command("runworker")

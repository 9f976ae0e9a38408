"""worker.commands.AsyncCommand: an ``async def handle`` keeps every behaviour of a
BaseCommand, from the command line (real ``manage.py`` processes) and from call_command in
sync and async code."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandError, CommandParser

from jobs.models import Order
from tests.asyncdjango.helpers import env, manage
from tests.engine.test_database import open_elsewhere
from tests.processes import ROOT
from worker.commands import AsyncCommand, acall_command
from worker.runtime.loops import loop_name


class Orders(AsyncCommand):
    """Creates orders with the async ORM and says how many there are, and on which loop."""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("customer")
        parser.add_argument("--count", type=int, default=1)

    async def handle(self, *args, customer: str, count: int, **options) -> str:
        if count < 1:
            raise CommandError(f"--count must be >= 1, not {count}")
        for n in range(count):
            await Order.objects.acreate(external_id=f"{customer}-{n}", customer=customer, total=1)
        self.loop = asyncio.get_running_loop()
        if options["verbosity"] > 1:
            self.stdout.write(f"created {count}")
        total = await Order.objects.filter(customer=customer).acount()
        return f"{total} orders of {customer} on {loop_name(self.loop)}"


# -- the command line ------------------------------------------------------------------------


def test_arguments_verbosity_and_output_from_the_command_line():
    quiet = manage("countdown", "3")
    loud = manage("countdown", "3", "--verbosity", "2", "--loop", "asyncio")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "3 2 1\n", "")
    assert (loud.returncode, loud.stdout) == (0, "on asyncio\n3 2 1\n")


def test_uvloop_by_default():
    assert manage("countdown", "1", "-v", "2").stdout == "on uvloop\n1\n"


def test_command_error_keeps_its_message_and_exit_status():
    failed = manage("countdown", "1", "--fail")
    assert failed.returncode == 3
    assert failed.stderr == "CommandError: asked to fail\n"


def test_bad_arguments_are_usage_errors():
    failed = manage("countdown", "many")
    assert failed.returncode == 2
    assert "argument start: invalid int value: 'many'" in failed.stderr


@pytest.mark.parametrize("swallow", [False, True], ids=["cancelled", "swallowed"])
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_cancels_the_coroutine_and_exits_cleanly(sig, status, swallow):
    # A coroutine that catches its cancellation and returns was stopped by the signal all
    # the same: the exit status says so (a script must not take it for a success).
    process = subprocess.Popen(
        [sys.executable, "manage.py", "countdown", "1", "--wait", *["--swallow"] * swallow],
        cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout.readline() == "waiting\n"
        process.send_signal(sig)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == status
    assert out == "cleaned up\n"  # the coroutine's finally ran: it was cancelled
    name = signal.Signals(sig).name
    assert err == f"Interrupted: {name}: the command was cancelled\n"  # no traceback


# -- call_command ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_call_command_from_sync_code_runs_the_orm_inside():
    out = StringIO()
    command = Orders()
    result = call_command(command, "ada", count=3, verbosity=2, stdout=out)
    assert result == "3 orders of ada on uvloop"
    assert out.getvalue() == "created 3\n3 orders of ada on uvloop\n"
    assert Order.objects.filter(customer="ada").count() == 3
    assert command.loop.is_closed()  # a loop of its own, gone with the call


@pytest.mark.django_db(transaction=True)
def test_call_command_raises_command_error():
    with pytest.raises(CommandError, match="--count must be >= 1, not 0"):
        call_command(Orders(), "ada", count=0)


@pytest.mark.django_db(transaction=True)
def test_call_command_takes_the_loop_option():
    assert call_command(Orders(), "bob", loop="asyncio").endswith("on asyncio")


@pytest.mark.django_db(transaction=True)
async def test_acall_command_runs_on_the_callers_loop():
    command = Orders()
    result = await acall_command(command, "cy", count=2)
    assert result.startswith("2 orders of cy")
    assert command.loop is asyncio.get_running_loop()
    assert await Order.objects.filter(customer="cy").acount() == 2


@pytest.mark.django_db(transaction=True)
async def test_acall_command_raises_command_error():
    with pytest.raises(CommandError, match="--count must be >= 1"):
        await acall_command(Orders(), "cy", count=-1)


async def test_call_command_inside_a_running_loop_names_acall_command():
    with pytest.raises(CommandError, match=r"await worker\.commands\.acall_command"):
        call_command(Orders(), "dee")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_connections_its_orm_calls_opened_are_closed():
    before = open_elsewhere()
    call_command(Orders(), "eve", count=2)
    assert Order.objects.filter(customer="eve").count() == 2
    assert open_elsewhere() == before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_connections_are_closed_when_the_command_fails():
    before = open_elsewhere()

    class Fails(Orders):
        async def handle(self, *args, **options) -> str:
            await Order.objects.acount()  # opens a connection
            raise CommandError("late failure")

    with pytest.raises(CommandError, match="late failure"):
        call_command(Fails(), "fay")
    assert open_elsewhere() == before


# What Django's ASGI handler does around each request: a sync view (here, call_command in a
# thread) runs in the thread of the request's ThreadSensitiveContext, which then waits.
UNDER_A_REQUESTS_CONTEXT = """
import asyncio

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.management import call_command

django.setup()


async def request():
    async with ThreadSensitiveContext():
        return await sync_to_async(call_command)("countdown", "3")

print(asyncio.run(request()))
"""


def run_bounded(*args: str) -> subprocess.CompletedProcess[str]:
    """A process of its own: a deadlock fails the test (TimeoutExpired) instead of hanging
    the suite on a thread that never ends."""
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env(), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_call_command_inside_a_thread_sensitive_context_runs_the_command():
    done = run_bounded("-c", UNDER_A_REQUESTS_CONTEXT)
    assert (done.returncode, done.stdout, done.stderr) == (0, "3 2 1\n3 2 1\n", "")


def test_an_async_command_calls_another_in_a_thread():
    done = run_bounded("manage.py", "relay", "countdown", "2")
    assert (done.returncode, done.stdout, done.stderr) == (0, "2 1\nrelayed: 2 1\n", "")


@pytest.mark.django_db(transaction=True)
async def test_sync_to_async_call_command_also_works_from_async_code():
    # Django's own way from async code (a thread with a loop of its own) works too.
    result = await sync_to_async(call_command)(Orders(), "gil", loop="asyncio")
    assert result == "1 orders of gil on asyncio"

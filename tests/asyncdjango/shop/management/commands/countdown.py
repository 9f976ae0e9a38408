"""An AsyncCommand for the tests: counts down, then says so; --fail raises CommandError;
--wait waits forever (for a signal), saying so first; with --swallow, it catches its
cancellation and returns."""

import asyncio
import sys

from django.core.management.base import CommandError, CommandParser

from worker.commands import AsyncCommand
from worker.runtime.loops import loop_name


class Command(AsyncCommand):
    help = "Count down from N."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("start", type=int)
        parser.add_argument("--fail", action="store_true")
        parser.add_argument("--wait", action="store_true")
        parser.add_argument("--swallow", action="store_true")

    async def handle(
        self, *args, start: int, fail: bool, wait: bool, swallow: bool, **options
    ) -> str:
        if fail:
            raise CommandError("asked to fail", returncode=3)
        if wait:
            self.stdout.write("waiting")
            sys.stdout.flush()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                if not swallow:
                    raise
                return "swallowed"
            finally:
                self.stdout.write("cleaned up")
        if options["verbosity"] > 1:
            self.stdout.write(f"on {loop_name(asyncio.get_running_loop())}")
        return " ".join(str(n) for n in range(start, 0, -1))

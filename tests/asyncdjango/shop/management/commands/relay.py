"""An AsyncCommand for the tests that runs another command the way Django's documentation
says to call sync code from async code: ``await sync_to_async(call_command)(...)``."""

from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandParser

from worker.commands import AsyncCommand


class Command(AsyncCommand):
    help = "Run another command, in a thread."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("command")
        parser.add_argument("arguments", nargs="*")

    async def handle(self, *args, command: str, arguments: list[str], **options) -> str:
        said = await sync_to_async(call_command)(command, *arguments)
        return f"relayed: {said}"

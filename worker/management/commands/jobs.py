"""``manage.py jobs ...``: the ops CLI (worker/ops/cli) behind Django's command line."""

from pathlib import Path

from django.core.management.base import BaseCommand

from worker.ops.cli import cli
from worker.ops.cli.standard import hoisted


def _prog(argv0: str) -> str:
    name = Path(argv0).name
    return "python -m django" if name == "__main__.py" else name


class Command(BaseCommand):
    help = "See and steer queues, workers and jobs (`jobs --help` lists the commands)."

    def run_from_argv(self, argv: list[str]) -> None:
        # Click parses everything after "jobs" (argparse would reject its options), and in
        # standalone mode exits with the command's status. Django's standard options may
        # come anywhere, as for any command: the group takes them (manage.py has applied
        # --settings and --pythonpath already, before Django set up).
        cli.main(args=hoisted(argv[2:]), prog_name=f"{_prog(argv[0])} {argv[1]}")

    def print_help(self, prog_name: str, subcommand: str) -> None:
        cli.main(args=["--help"], prog_name=f"{prog_name} {subcommand}", standalone_mode=False)

"""The reference site's settings with TASKS on the in-process ImmediateBackend, as a
project's test settings would make them: every task of jobs/tasks.py, with the engine's
options, must import under it."""

from project.settings import *  # noqa: F403
from project.settings import TASKS
from worker.testing import in_process

TASKS = in_process(TASKS)

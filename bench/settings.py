"""Settings of the processes a benchmark starts: the project's, plus the bench app's tasks.

``BENCH_QUEUES=N`` in the environment adds N queues, ``q000`` to ``q<N-1>``, to the
backend's QUEUES: the growth benchmark (bench/growth.py) sets it for one worker serving
100 queues. Unset, the queues are the project's.
"""

import os

from project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]  # noqa: F405

if extra := int(os.environ.get("BENCH_QUEUES") or 0):
    _default = TASKS["default"]  # noqa: F405
    _queues = [*_default["QUEUES"], *(f"q{i:03d}" for i in range(extra))]
    TASKS = {**TASKS, "default": {**_default, "QUEUES": _queues}}  # noqa: F405

# The benchmarks' jobs are not enqueued in transactions, and their workers' database is not
# always migrated: no outbox.
TASKS["default"]["OPTIONS"]["outbox"] = False

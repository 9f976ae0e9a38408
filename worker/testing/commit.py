"""Jobs that wait for a commit under a ``TestCase``, whose transaction never commits.

An enqueue inside only the atomic blocks a ``TestCase`` wraps each test in is sent at once,
as the code would send it in autocommit (worker/pending.py). One inside the code's own
``transaction.atomic()`` waits for its commit; there, when that block ends, it waits for
the test's transaction, which never commits. ``send_waiting_jobs()`` (called by
``run_jobs()``) sends those now, as if it had; ``captureOnCommitCallbacks(execute=True)``
does the same for a block of the test. A block that rolled back took its jobs with it.
"""

from __future__ import annotations

from worker import pending


def send_waiting_jobs() -> int:
    """Send the jobs enqueued inside the code's own atomic blocks, ended since, that wait
    for the commit of a TestCase's transaction; how many (a workflow's or a batch's call
    that holds no job, such as a batch's close, counts one: it may release jobs). Called
    inside a block of the code's own, nothing is sent: its jobs wait for it."""
    if pending.in_transaction():
        return 0
    sends = pending.take_waiting()
    for send in sends:
        send()
    return sum(len(send.prepared) or 1 for send in sends)

"""Jobs enqueued inside ``transaction.atomic()``: sent when it commits, not at all when it
rolls back, and known meanwhile to the transaction that enqueued them (``get_result`` finds
them READY; a second enqueue of a unique call returns the first).

The transaction's own list of on-commit callbacks is the record of what waits: a rollback
(of the transaction or of a savepoint) drops entries from it, so nothing here can outlive
the jobs it describes.

The atomic blocks a Django ``TestCase`` wraps each test in are not the code's own: they
never commit, and the code under test runs as it would in autocommit, so an enqueue inside
them alone is sent at once (an enqueue inside the code's own ``atomic()`` still waits for
it: see docs/testing.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from django.db import transaction

from worker.protocol.records import NewJob

if TYPE_CHECKING:
    from worker.task import Result


class Sender(Protocol):
    """A backend that stores prepared jobs: the Redis one, or an in-process one
    (worker/testing)."""

    def send(self, prepared: list[tuple[Result, NewJob]]) -> Result | None: ...


class Send:
    """Sends prepared jobs of one task when called (at once, or by on_commit). Called once:
    a test that ran the transaction's callbacks itself (``captureOnCommitCallbacks``) leaves
    them on the list of a transaction that never commits; sent, they wait no more."""

    __slots__ = ("backend", "prepared", "sent")

    def __init__(self, backend: Sender, prepared: list[tuple[Result, NewJob]]):
        self.backend = backend
        self.prepared = prepared
        self.sent = False

    def __call__(self) -> None:
        if not self.sent:
            self.sent = True
            self.backend.send(self.prepared)

    def one(self) -> Result:
        """Send the one job; its result, or the first job's for a unique call's twin."""
        return self.backend.send(self.prepared) or self.prepared[0][0]


# How many worker.testing isolations are on (a Redis prefix of the test's own): only then
# is a TestCase's block no reason to wait. Outside one, a job sent at once would reach the
# development queues, where a running worker would run it against the development database.
isolations = 0


def in_transaction() -> bool:
    """Whether an enqueue now must wait for a commit: inside an atomic block of the code's
    own (not only those of a TestCase whose TASKS worker.testing isolates)."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        return False
    if not isolations:
        return True
    # Django marks a TestCase's blocks (a private attribute: a Django without it makes
    # every block count, as before).
    blocks = getattr(connection, "atomic_blocks", ())
    return not blocks or not all(getattr(b, "_from_testcase", False) for b in blocks)


def on_commit(send: Send) -> bool:
    """Defer ``send`` to the commit of the open transaction, if there is one."""
    if not in_transaction():
        return False
    transaction.on_commit(send, robust=False)
    return True


def result(backend: Sender, job_id: str) -> Result | None:
    """The READY result of a job this transaction will send to ``backend`` on commit, if it
    is one."""
    for send in _waiting(backend):
        for ready, job in send.prepared:
            if job.id == job_id:
                return ready
    return None


def unique_twin(backend: Sender, job: NewJob) -> Result | None:
    """For a unique job, the result of the same call enqueued to ``backend`` earlier in this
    transaction."""
    if job.unique is None:
        return None
    for send in _waiting(backend):
        for ready, other in send.prepared:
            if other.unique is not None and (other.queue, other.unique[0]) == (
                job.queue,
                job.unique[0],
            ):
                return ready
    return None


def take_waiting() -> list[Send]:
    """Take every job send waiting for the commit of the open transaction off its list of
    on-commit callbacks, in order: for a caller that sends them now instead (a test whose
    transaction never commits, worker/testing/commit.py)."""
    connection = transaction.get_connection()
    callbacks = getattr(connection, "run_on_commit", None)
    if not connection.in_atomic_block or callbacks is None:
        return []
    taken = [entry[1] for entry in callbacks if isinstance(entry[1], Send)]
    callbacks[:] = [entry for entry in callbacks if not isinstance(entry[1], Send)]
    return [send for send in taken if not send.sent]


def waiting_count() -> int:
    """How many jobs wait for the commit of the open transaction (of any backend)."""
    callbacks = getattr(transaction.get_connection(), "run_on_commit", None) or []
    sends = [entry[1] for entry in callbacks if isinstance(entry[1], Send)]
    return sum(len(send.prepared) for send in sends if not send.sent)


_warned = False


def _waiting(backend: Sender) -> Iterator[Send]:
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        return
    # run_on_commit is Django's list of (savepoint ids, callback, robust): not a public API,
    # so a Django that renames it costs only this lookup, with a warning.
    callbacks = getattr(connection, "run_on_commit", None)
    if callbacks is None:
        global _warned
        if not _warned:
            _warned = True
            warnings.warn(
                "This Django keeps no run_on_commit list: jobs waiting for a commit are not "
                "found by get_result nor by a unique enqueue until it commits",
                RuntimeWarning,
                stacklevel=3,
            )
        return
    for entry in callbacks:
        if isinstance(entry[1], Send) and entry[1].backend is backend and not entry[1].sent:
            yield entry[1]

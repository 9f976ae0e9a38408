"""The job of the failover tests (tests/faults/test_sentinel.py): it counts its runs outside
Redis, in a file, since a failover may take back what the old master had stored."""

import os

from django.tasks import task


@task(max_attempts=10)
async def record(label: str, pad: str = "") -> None:
    """Appends ``label`` to the file FAILOVER_LEDGER names (one write: whole lines)."""
    ledger = os.open(os.environ["FAILOVER_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(ledger, f"{label}\n".encode())
    finally:
        os.close(ledger)

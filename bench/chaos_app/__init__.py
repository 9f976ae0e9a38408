"""The chaos soak's own jobs (bench/chaos.py): each writes its executions to the ledger."""

"""The transactional outbox (OPTIONS ``"outbox": True``): a job enqueued inside
``transaction.atomic()`` is written to the database in the same transaction, and moved to
Redis after the commit, by the committing process at once or, when Redis cannot be
reached then, by the workers once it can. A committed transaction's jobs are never lost to
a Redis outage at commit time; a rolled-back one's never existed. See docs/reliability.md.
"""

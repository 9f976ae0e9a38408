"""The database side of the async Django toolkit: ``operations`` (RunAsync, a migration
operation running an ``async def``) and ``pool`` (what a job is told when PostgreSQL's
connection pool has no connection for it). See docs/async-django.md."""

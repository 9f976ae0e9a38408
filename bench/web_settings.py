"""Settings of the uvicorn process of the web benchmark: the bench settings, plus two plain
async views under /bench/ (bench/urls.py) in front of the project's own URLs."""

from bench.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

"""Settings of the uvicorn processes of the site load test (bench/site_load.py): the web
benchmark's (the project plus bench/urls.py), and the event-loop delay sampler."""

from bench.web_settings import *  # noqa: F403

MIDDLEWARE = ["bench.site_lag.LoopLagMiddleware", *MIDDLEWARE]  # noqa: F405

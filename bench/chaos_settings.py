"""Settings of every process of the chaos soak (bench/chaos.py): the project's (so the web
process serves the reference site, fake services included), plus the soak's job kinds."""

from project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench.chaos_app.apps.ChaosConfig"]  # noqa: F405

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

application = get_asgi_application()

from django.conf import settings  # noqa: E402 - configured by get_asgi_application

if settings.DEBUG:
    # The admin's and the dashboard's static files, served by the site itself (the demo);
    # in production, collectstatic and a web server (or a CDN) serve them.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)

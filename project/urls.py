from django.conf import settings
from django.urls import include, path

urlpatterns = [
    path("", include("jobs.urls")),
]

if settings.FAKE_SERVICES:
    urlpatterns += [path("fake/", include("jobs.fake_services"))]

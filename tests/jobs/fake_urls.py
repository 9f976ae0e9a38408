"""The site's URLs with the fake services mounted whatever settings.FAKE_SERVICES says."""

from django.urls import include, path

from project.urls import urlpatterns as site

urlpatterns = [*site, path("fake/", include("jobs.fake_services"))]

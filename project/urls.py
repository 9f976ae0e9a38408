from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("jobs.urls")),
    path("admin/", admin.site.urls),
    # The staff dashboard at /tasks/ (docs/dashboard.md), beside the metrics view.
    path("tasks/", include("worker.dashboard.urls")),
    # The cluster's Prometheus gauges at /tasks/metrics (OPTIONS['metrics_token'], or staff).
    path("tasks/", include("worker.observe.urls")),
]

if settings.FAKE_SERVICES:
    urlpatterns += [path("fake/", include("jobs.fake_services"))]

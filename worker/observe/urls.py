"""The cluster metrics view for a site's URLconf:
``path("tasks/", include("worker.observe.urls"))`` serves it at ``/tasks/metrics``."""

from django.urls import path

from worker.observe import views

app_name = "worker_observe"
urlpatterns = [path("metrics", views.metrics, name="metrics")]

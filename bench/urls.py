"""URLs of the web benchmark (bench/web_settings.py): /bench/... then the project's."""

from django.urls import include, path

from bench import views

urlpatterns = [
    path("bench/noop/", views.noop, name="bench-noop"),
    path("bench/enqueue/", views.enqueue, name="bench-enqueue"),
    path("bench/accepted/", views.accepted, name="bench-accepted"),
    path("bench/accepted-enqueue/", views.accepted_enqueue, name="bench-accepted-enqueue"),
    path("", include("project.urls")),
]

"""The dashboard's URLs: ``path("tasks/", include("worker.dashboard.urls"))``."""

from django.urls import path

from worker.dashboard import actions, events, pages

app_name = "worker_dashboard"
urlpatterns = [
    path("", pages.overview, name="overview"),
    path("events", events.events, name="events"),
    path("queues/", pages.queues, name="queues"),
    path("queues/<str:queue>/pause", actions.queue_action, {"verb": "pause"}, name="pause"),
    path("queues/<str:queue>/resume", actions.queue_action, {"verb": "resume"}, name="resume"),
    path("queues/<str:queue>/purge", pages.purge_confirm, name="purge"),
    path(
        "queues/<str:queue>/purge/confirm",
        actions.queue_action,
        {"verb": "purge"},
        name="purge-confirmed",
    ),
    path("workers/", pages.workers, name="workers"),
    path("workers/quiet", actions.worker_action, {"verb": "quiet"}, name="quiet"),
    path("workers/stop", actions.worker_action, {"verb": "stop"}, name="stop"),
    path("jobs/", pages.jobs, name="jobs"),
    path("jobs/act", actions.jobs_action, name="jobs-action"),
    path("jobs/bulk", actions.jobs_bulk, name="jobs-bulk"),
    path("jobs/<str:job_id>/", pages.job, name="job"),
    path("workflows/<str:workflow_id>/", pages.workflow, name="workflow"),
    path("workflows/<str:workflow_id>/cancel", actions.workflow_cancel, name="workflow-cancel"),
    path("periodic/", pages.periodic, name="periodic"),
    path("periodic/run", actions.schedule_action, {"verb": "run"}, name="run-schedule"),
    path("periodic/pause", actions.schedule_action, {"verb": "pause"}, name="pause-schedule"),
    path("periodic/resume", actions.schedule_action, {"verb": "resume"}, name="resume-schedule"),
    path("by-task/", pages.by_task, name="by-task"),
]

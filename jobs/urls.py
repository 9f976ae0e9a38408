from django.urls import path

from jobs import views

app_name = "jobs"

urlpatterns = [
    path("jobs/sync-orders/", views.enqueue_sync_orders, name="sync-orders"),
    path("jobs/<str:job_id>/", views.job_status, name="job-status"),
    path("jobs/<str:job_id>/events", views.job_events, name="job-events"),
    path("workflows/<str:workflow_id>/", views.workflow_status, name="workflow"),
    path("reports/", views.create_report, name="reports"),
    path("reports/<int:report_id>/", views.report_detail, name="report"),
]

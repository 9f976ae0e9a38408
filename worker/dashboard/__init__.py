"""The dashboard: a staff-only web UI over the operations API (worker.ops.Ops), mounted by a
site's URLconf with ``path("tasks/", include("worker.dashboard.urls"))``. See
docs/dashboard.md."""

"""Tests of what a worker tells about itself: the loop watchdog, JSON logs, traces. Also the
app whose tasks they run (tasks.py), installed in the worker processes by settings.py."""

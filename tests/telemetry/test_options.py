"""The telemetry options of a TASKS entry, as ``manage.py check`` reports them."""

from __future__ import annotations

from tests.engine.test_checks import configure, worker_messages


def test_a_wrong_threshold_or_log_format_is_e002_naming_what_is_allowed(settings, tasks_prefix):
    configure(settings, tasks_prefix, {"url": "redis://h/0", "loop_lag_threshold": 0.001,
                                       "log_format": "xml"})  # fmt: skip
    assert [(m.id, m.msg) for m in worker_messages()] == [
        ("worker.E002", "OPTIONS['log_format'] must be one of 'text', 'json', not 'xml'"),
        ("worker.E002", "OPTIONS['loop_lag_threshold'] must be 0 (no watchdog) or at least "
                        "0.01 seconds, not 0.001"),
    ]  # fmt: skip
    configure(settings, tasks_prefix, {"url": "redis://h/0", "loop_lag_threshold": "1"})
    assert [m.msg for m in worker_messages()] == [
        "OPTIONS['loop_lag_threshold'] must be int or float or NoneType, not str"
    ]


def test_off_and_sound_values_pass(settings, tasks_prefix):
    for threshold in (0, None, 0.01, 2):
        configure(settings, tasks_prefix, {"url": "redis://h/0", "loop_lag_threshold": threshold,
                                           "log_format": "json"})  # fmt: skip
        assert worker_messages() == []

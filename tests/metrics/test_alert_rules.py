"""docs/prometheus-alerts.yml, run by Prometheus's own rule tester (`promtool test rules`):
the rules load, and the loop-lag alert fires for a worker whose loop stalls for seconds now
and then, which a quantile of the lag samples (one per turn of the loop) would hide."""

import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import IN_CI
from tests.processes import ROOT

ALERT = "TasksEventLoopLag"


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "needs promtool (Debian: apt-get install prometheus)"
        if IN_CI:
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)
    return found


def description(rules: str) -> str:
    """The alert's description, as the rules file has it (a double-quoted YAML string)."""
    found = re.search(rf"- alert: {ALERT}\n.*?\n +description: (\".*?\")\n", rules, re.S)
    assert found, f"no description for {ALERT}"
    return json.loads(found.group(1))


def test_the_loop_lag_alert_fires_for_stalls_of_seconds_not_for_a_small_lag(promtool, tmp_path):
    rules = (ROOT / "docs" / "prometheus-alerts.yml").read_text()
    (tmp_path / "prometheus-alerts.yml").write_text(rules)
    lag = "worker_event_loop_lag_seconds_sum"
    stalls = "worker_event_loop_lag_seconds_bucket"
    cases = {
        "rule_files": ["prometheus-alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # one stall of 10 s a minute, among some 1,200 turns on time: 1 sample
                    # of 1,200 over 0.1 s, under the 99th percentile
                    {"series": f'{lag}{{instance="stalls"}}', "values": "0+10x20"},
                    {"series": f'{stalls}{{instance="stalls",le="0.1"}}', "values": "0+1199x20"},
                    {"series": f'{stalls}{{instance="stalls",le="+Inf"}}', "values": "0+1200x20"},
                    # late by 0.4 ms a turn: 0.8% of the time
                    {"series": f'{lag}{{instance="fine"}}', "values": "0+0.5x20"},
                ],
                "alert_rule_test": [
                    {"eval_time": "4m", "alertname": ALERT, "exp_alerts": []},
                    {
                        "eval_time": "15m",
                        "alertname": ALERT,
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "instance": "stalls"},
                                "exp_annotations": {
                                    "summary": "Worker stalls: its event loop was late 16.67% "
                                    "of the time",
                                    "description": description(rules),
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "cases.yml").write_text(json.dumps(cases))  # JSON is YAML
    done = subprocess.run(
        [promtool, "test", "rules", "cases.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

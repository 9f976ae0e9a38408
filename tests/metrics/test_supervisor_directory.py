"""The directory a --processes supervisor sums its children's metrics from: a supervisor
killed outright (SIGKILL) cannot remove its own, and the next one to start removes it once
no process has its pid; a live supervisor's stays."""

import os
import subprocess
import sys
import tempfile

from worker.observe.multiprocess import PREFIX, Children


def test_a_dead_supervisors_directory_goes_and_a_live_ones_stays(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    left = tmp_path / f"{PREFIX}{int(gone.stdout)}-abc123"
    left.mkdir()
    (left / "4242.json").write_text("{}")
    live = tmp_path / f"{PREFIX}{os.getppid()}-def456"  # pytest's parent: alive
    live.mkdir()
    unrelated = tmp_path / f"{PREFIX}notapid"
    unrelated.mkdir()

    children = Children()
    try:
        assert not left.exists()
        assert live.exists() and unrelated.exists()
        assert children.directory.startswith(str(tmp_path / f"{PREFIX}{os.getpid()}-"))
    finally:
        children.close()
    assert not os.path.exists(children.directory)

"""The event loop a worker runs: uvloop when installed, asyncio's when asked or missing."""

import sys

import pytest

from worker.runtime.loops import loop_factory


def test_auto_takes_uvloop_when_installed_and_falls_back_without_it(monkeypatch):
    uvloop = pytest.importorskip("uvloop")
    assert loop_factory("auto") is uvloop.new_event_loop
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("asyncio") is None
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    assert loop_factory("auto") is None
    with pytest.raises(ValueError, match="uvloop is not installed"):
        loop_factory("uvloop")


def test_an_unknown_loop_is_refused_by_name():
    with pytest.raises(ValueError, match="event loop 'trio': expected one of auto, uvloop"):
        loop_factory("trio")

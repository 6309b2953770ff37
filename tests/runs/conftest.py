from __future__ import annotations

import pytest

from interp.records import RunStore


@pytest.fixture()
def run_store(tmp_path, monkeypatch) -> RunStore:
    """A run store in this test's own folder."""
    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("STEERSCOPE_TRACKING_URI", raising=False)
    return RunStore()

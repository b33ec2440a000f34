"""Shared fixtures: every test must leave no bdlcore handle alive."""

import gc

import pytest

import bdlcore


@pytest.fixture(autouse=True)
def no_leaked_handles():
    """Each test frees every handle it creates (checked after a garbage collection)."""
    before = bdlcore.debug_live_handles()
    yield
    gc.collect()
    after = bdlcore.debug_live_handles()
    assert after == before, f"test leaked {after - before} bdlcore handle(s) ({before} alive before, {after} after)"


@pytest.fixture(scope="session", autouse=True)
def no_live_handles_at_end():
    """After the whole session the process holds no bdlcore handle."""
    yield
    gc.collect()
    live = bdlcore.debug_live_handles()
    assert live == 0, f"{live} bdlcore handle(s) still alive after the test session"

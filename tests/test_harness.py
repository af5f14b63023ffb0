"""The test harness itself: the race helper, the virtual clock, and how parallel workers are kept apart."""

from __future__ import annotations

import threading
import time
import types

import pytest

from tests.concurrency import run_concurrently
from tests.conftest import VirtualClock, _end_to_end_first, _names_tests, worker_redis_environment

# --- run_concurrently ----------------------------------------------------------------------------


def test_the_calls_really_overlap_and_their_results_come_back_in_order():
    # A barrier of the calls' own: it only opens if all four run at the same time.
    inner = threading.Barrier(4, timeout=10)

    def meet(n: int):
        def run() -> int:
            inner.wait()
            return n * 10

        return run

    assert run_concurrently([meet(n) for n in range(4)]) == [0, 10, 20, 30]


def test_an_exception_in_any_call_fails_the_test_with_all_of_them():
    def ok() -> int:
        return 1

    def boom() -> int:
        raise ValueError("boom")

    with pytest.raises(ExceptionGroup) as raised:
        run_concurrently([ok, boom, boom])

    assert [str(error) for error in raised.value.exceptions] == ["boom", "boom"]
    assert "2 of 3 concurrent calls raised" in str(raised.value)


def test_a_call_that_never_returns_fails_the_test_instead_of_hanging_it():
    release = threading.Event()
    try:
        with pytest.raises(AssertionError, match="1 of 2 threads still running"):
            run_concurrently([lambda: 1, release.wait], timeout=0.5)
    finally:
        release.set()


# --- the virtual clock ---------------------------------------------------------------------------


def test_the_virtual_clock_moves_on_by_what_it_would_have_slept():
    clock = VirtualClock()
    before = clock.monotonic()
    real_before = time.monotonic()

    for _ in range(100):
        clock.sleep(0.5)

    assert clock.monotonic() - before >= 50
    assert time.monotonic() - real_before < 5  # and no real time went by
    assert clock.slept == [0.5] * 100
    assert clock.time() == pytest.approx(time.time(), abs=5)  # the rest is the real time module


def test_virtual_clock_replaces_the_time_of_one_module_only(virtual_clock):
    module = types.ModuleType("polling")
    module.time = time

    clock = virtual_clock(module)

    assert module.time is clock
    assert time.sleep is not clock.sleep


# --- parallel workers ----------------------------------------------------------------------------


def test_each_worker_gets_its_own_redis_databases():
    environ = {"Q_REDIS_URL": "redis://127.0.0.1:6379/5", "CACHE_URL": "redis://127.0.0.1:6379/5", "HOME": "/root"}

    assert worker_redis_environment(environ, 0) == {}
    assert worker_redis_environment(environ, 1) == {
        "Q_REDIS_URL": "redis://127.0.0.1:6379/6",
        "CACHE_URL": "redis://127.0.0.1:6379/6",
    }


def test_a_broker_and_a_cache_in_two_databases_move_by_both():
    environ = {"Q_REDIS_URL": "redis://:secret@redis:6379/3", "CACHE_URL": "redis://redis:6379/4"}

    moved = worker_redis_environment(environ, 1)

    # Worker 1 must not reach worker 0's cache database (4) with its broker, nor the reverse.
    assert moved == {"Q_REDIS_URL": "redis://:secret@redis:6379/5", "CACHE_URL": "redis://redis:6379/6"}


def test_without_redis_or_with_a_database_cache_nothing_changes():
    assert worker_redis_environment({}, 1) == {}
    assert worker_redis_environment({"CACHE_URL": "dbcache://cache_table"}, 1) == {}


def test_a_url_without_a_database_number_is_database_zero():
    assert worker_redis_environment({"Q_REDIS_URL": "redis://127.0.0.1:6379"}, 2) == {
        "Q_REDIS_URL": "redis://127.0.0.1:6379/2"
    }


def test_running_out_of_redis_databases_is_a_clear_usage_error():
    with pytest.raises(pytest.UsageError, match="Redis database 16"):
        worker_redis_environment({"Q_REDIS_URL": "redis://127.0.0.1:6379/15"}, 1)
    with pytest.raises(pytest.UsageError, match="redis://host:port/<db>") as raised:
        worker_redis_environment({"Q_REDIS_URL": "redis://:hunter2@127.0.0.1:6379/queue"}, 1)
    assert "hunter2" not in str(raised.value)


def test_workers_start_only_when_a_directory_is_run(tmp_path):
    (tmp_path / "test_x.py").write_text("")

    assert _names_tests("tests/test_settings.py")
    assert _names_tests("tests/test_settings.py::test_malformed_values_name_the_variable")
    assert _names_tests(str(tmp_path / "test_x.py"))
    assert not _names_tests("tests")
    assert not _names_tests(str(tmp_path))


class FakeItem:
    def __init__(self, name: str, *, e2e: bool = False, db: str | None = None) -> None:
        self.name = name
        self.fixturenames = ["transactional_db"] if db == "transactional" else ["db"] if db == "plain" else []
        self._e2e = e2e

    def get_closest_marker(self, name: str):
        return object() if name == "e2e" and self._e2e else None

    def __repr__(self) -> str:
        return self.name


def test_end_to_end_tests_lead_the_tests_run_after_the_plain_database_ones():
    items = [
        FakeItem("plain1", db="plain"),
        FakeItem("plain2", db="plain"),
        FakeItem("transactional", db="transactional"),
        FakeItem("cluster", e2e=True, db="transactional"),
        FakeItem("nodb"),
        FakeItem("demo", e2e=True),
    ]

    _end_to_end_first(items)

    assert [item.name for item in items] == ["plain1", "plain2", "cluster", "demo", "transactional", "nodb"]

"""Real threads released at the same instant: the harness of the race tests.

A race test (two dispatchers, eight token refreshes, twenty creates past a limit) runs the same
call in several threads, each with its own database connection, and asserts that the database
rules let exactly the right number through. :func:`run_concurrently` is that harness, written
once: a barrier releases the threads together, every thread closes its own connections (or the
test database could not be flushed), and an exception or a hung thread fails the test instead
of being lost in a thread's output.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from django.db import connections

# Generous on a busy 2-core machine: starting the threads is all that happens before the barrier.
BARRIER_TIMEOUT = 30.0


def run_concurrently[T](calls: Sequence[Callable[[], T]], *, timeout: float = 120.0) -> list[T]:
    """Run each of ``calls`` in its own thread, all released together; their results, in order.

    A call that raised fails the test with all the calls' exceptions (an exception group, with
    their tracebacks); a thread not finished ``timeout`` seconds after the start fails it too.
    ``run_concurrently([call] * 8)`` races one call eight times.
    """
    barrier = threading.Barrier(len(calls))
    results: dict[int, T] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(index: int, call: Callable[[], T]) -> None:
        try:
            barrier.wait(timeout=BARRIER_TIMEOUT)
            result = call()
            with lock:
                results[index] = result
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            # Django's connections are per thread: this closes the ones this thread opened.
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index, call), daemon=True) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    hung = sum(thread.is_alive() for thread in threads)
    assert not hung, f"{hung} of {len(threads)} threads still running after {timeout:.0f}s"
    if errors:
        raise BaseExceptionGroup(f"{len(errors)} of {len(calls)} concurrent calls raised", errors)
    return [results[index] for index in range(len(calls))]

"""Waiting for a condition, never for a fixed time."""
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: How often a condition is checked again.  Short enough that a waiter notices
#: within a few milliseconds, long enough not to burn a core.
POLL_INTERVAL = 0.02


def wait_for(condition: Callable[[], T], timeout: float, interval: float = POLL_INTERVAL) -> T | None:
    """Check ``condition`` until it returns something truthy, for at most ``timeout`` seconds.

    Returns that value, or ``None`` when the time is up.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)

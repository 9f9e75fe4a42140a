"""How many proxied requests one user may have in flight: one user must not starve the site of its threads.

Each proxied HTTP request holds one of the web process's threads until its
body is sent.  A user with stalled downloads, or a notebook that froze,
would otherwise take every thread, and the site would stop answering
anybody.  So each web process lets a user's notebook have at most
``max_user_requests`` requests in flight; once these stop finishing, more
are refused at once (with 503), holding no thread.
"""
import threading
import time
import weakref
from dataclasses import dataclass

#: Once all of a user's slots have been held this long without one coming
#: free, more requests are refused at once (see RequestLimiter).
QUEUE_SECONDS = 3.0
#: The longest a request waits for a slot.
MAX_QUEUE_SECONDS = 10.0

@dataclass
class NotebookRequests:
    """The requests one notebook has in flight from this process, and those waiting for a slot."""

    in_flight: int = 0
    waiting: int = 0
    #: When a slot was last taken or given back (time.monotonic).
    moved_at: float = 0.0


class RequestLimiter:
    """The HTTP requests in flight to each notebook from this web process, capped per notebook.

    A notebook belongs to one user, so its port stands for the user.  The
    count is per process: each process has its own threads to protect.

    A browser loads a notebook page with a burst of parallel requests (six
    at once over HTTP/1.1, dozens over HTTP/2), each done in milliseconds,
    so a request over the cap waits for a slot while the user's requests
    keep finishing.  Once all of the user's slots have been held for
    :data:`QUEUE_SECONDS` without one coming free (stalled downloads, a
    frozen notebook), requests over the cap are refused at once, holding no
    thread; none waits longer than :data:`MAX_QUEUE_SECONDS`.
    """

    def __init__(self):
        self._changed = threading.Condition()
        self._notebooks: dict[int, NotebookRequests] = {}

    def acquire(self, port: int, limit: int) -> "RequestSlot | None":
        """One of the ``limit`` slots of the notebook on ``port``, or ``None`` when none comes free in time."""
        arrived = time.monotonic()
        with self._changed:
            notebook = self._notebooks.setdefault(port, NotebookRequests())
            notebook.waiting += 1
            try:
                while notebook.in_flight >= limit:
                    now = time.monotonic()
                    deadline = min(notebook.moved_at + QUEUE_SECONDS, arrived + MAX_QUEUE_SECONDS)
                    if now >= deadline:
                        return None
                    self._changed.wait(deadline - now)
                notebook.in_flight += 1
                notebook.moved_at = time.monotonic()
                return RequestSlot(self, port)
            finally:
                notebook.waiting -= 1
                self._forget_if_idle(port, notebook)

    def _release(self, port: int) -> None:
        with self._changed:
            notebook = self._notebooks[port]
            notebook.in_flight -= 1
            notebook.moved_at = time.monotonic()
            self._forget_if_idle(port, notebook)
            self._changed.notify_all()

    def _forget_if_idle(self, port: int, notebook: NotebookRequests) -> None:
        if not notebook.in_flight and not notebook.waiting:
            del self._notebooks[port]


class RequestSlot:
    """One request's place in its notebook's count; given back once, at the latest when collected."""

    def __init__(self, limiter: RequestLimiter, port: int):
        self._release = weakref.finalize(self, limiter._release, port)

    def release(self) -> None:
        """Give the place back; calling again does nothing."""
        self._release()

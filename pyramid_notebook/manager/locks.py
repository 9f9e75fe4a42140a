"""An exclusive lock shared by every web process on the machine, and re-entrant within a thread.

Several web workers may share one notebook folder; every decision that must
be taken once (start this user, give out this port, record why a notebook
ended) is taken under a lock on a file.  A state read that finds something
to record takes the user's lock, and it may run inside a launch or a stop
that holds it already: the thread that holds a lock may take it again.
"""
import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_held_locks = threading.local()


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block."""
    held = _held_locks.__dict__.setdefault("paths", set())
    key = os.path.abspath(path)
    if key in held:
        yield
        return
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
    finally:
        os.close(fd)

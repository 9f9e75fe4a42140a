"""The context file: the one document the web process and a notebook daemon share.

The manager writes a user's context (what the notebook should contain, plus
the notebook's secret token) before it spawns the daemon; the daemon adds what
only it knows (its pid, its port) once it runs.  Both sides may read the file
at any moment, so every write goes to a temporary file that is renamed over
the old one: a reader sees the old document or the new one, never half of one.
The file holds the token, so it is created readable by its owner only.
"""
import hashlib
import json
import os
import tempfile
from pathlib import Path

CONTEXT_FILE_NAME = "context.json"

#: Keys that describe one run of a notebook (its process, port, token and
#: progress).  The manager drops them from a context it is asked to start.
RUN_KEYS = frozenset(
    {
        "pid",
        "token",
        "http_port",
        "notebook_name",
        "ready",
        "started",
        "launched_at",
        "last_activity",
        "start_error",
        "stopped_at",
        "stopped_reason",
        "launcher_pid",
        "kill_timeout",
        "idle_timeout",
        "work_folder",
    }
)

#: Why a notebook ended, as recorded in ``stopped_reason`` beside ``stopped_at``.
STOPPED_BY_USER = "shut down by its user"
STOPPED_BY_LOGOUT = "its user logged out"
STOPPED_BY_ADMIN = "stopped from the admin page"
STOPPED_BY_CLI = "stopped from the command line"
STOPPED_IDLE = "idle timeout"
STOPPED_HARD_LIMIT = "hard time limit (kill_timeout)"
STOPPED_CONTEXT_CHANGE = "restarted with another context"
STOPPED_CRASH = "the notebook process ended by itself"
STOPPED_START_FAILED = "it did not start"
STOPPED_PID_FILE_DAMAGED = "its pid file was damaged"

#: Keys that never take part in the context hash: the run's own, and where
#: the notebook was launched from (one notebook may be launched from many pages).
UNHASHED_KEYS = RUN_KEYS | {"context_hash", "launch_url"}


def context_hash(context: dict) -> str:
    """A digest of the context that is the same in every process.

    Python's ``hash()`` of a string differs between interpreter runs, so two
    web workers would each think the other's notebook had a different context
    and restart it.  A digest of canonical JSON does not.
    """
    significant = {key: value for key, value in context.items() if key not in UNHASHED_KEYS}
    canonical = json.dumps(significant, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def default_notebook_name(context: dict) -> str:
    """The file name of the notebook a user lands in for this context."""
    return "default-{}.ipynb".format(context["context_hash"])


def write_context(path: Path, context: dict) -> None:
    """Atomically replace ``path`` with ``context`` as JSON, mode 0600."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=".context-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(context, stream, indent=2, sort_keys=True, default=str)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_context(path: Path) -> dict | None:
    """The context stored at ``path``, or ``None`` if it is missing or damaged.

    A damaged file (cut short, not JSON, not an object) means no notebook can
    be trusted to run from it; callers treat it exactly like a missing one.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
        context = json.loads(text)
    except (OSError, ValueError):
        return None
    return context if isinstance(context, dict) else None

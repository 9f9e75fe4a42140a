"""What a failed start's logs say: read for the error message, never parsed for control flow.

A start can fail in the launcher (no Python, bad arguments) or in the server
(a bad configuration); the two write different logs of the work folder.
"""
from collections import deque
from pathlib import Path

from pyramid_notebook.protocol.workfolder import WorkFolder

#: How many lines of a log a start failure quotes.
LOG_TAIL_LINES = 20

#: Lines that daemonocle's shutdown hook and launcher write around a failure;
#: they say that it failed, not why.
UNINFORMATIVE_LOG_PREFIXES = ("notebook_daemon: ", "Starting notebook_daemon", "ERROR: Child exited")


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file, or a note that it does not exist."""
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return "".join(deque(stream, maxlen=lines))
    except OSError:
        return "({} does not exist)\n".format(path)


def last_informative_line(path: Path) -> str | None:
    """The last line of a log that says something about a failure, or None.

    daemonocle's own lines ("Exiting with non-zero exit code 1") say only
    that the server failed; the line before them says why.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            lines = [line.strip() for line in deque(stream, maxlen=LOG_TAIL_LINES)]
    except OSError:
        return None
    for line in reversed(lines):
        if line and not line.startswith(UNINFORMATIVE_LOG_PREFIXES):
            return line
    return None


def written_since(path: Path, moment: float) -> bool:
    """True if ``path`` exists and was last written at or after ``moment`` (a log of this run, not an earlier one)."""
    try:
        return path.stat().st_mtime >= moment
    except OSError:
        return False


def start_failure_cause(folder: WorkFolder, launched_at: float) -> str | None:
    """The line of the logs that says why a start failed: the server's log if this run wrote it, else the launcher's."""
    server_log_is_this_runs = written_since(folder.stderr_log, launched_at)
    return last_informative_line(folder.stderr_log if server_log_is_this_runs else folder.launch_log)


def failure_report(name: str, folder: WorkFolder, reason: str) -> str:
    """A failed start explained: the reason and the last lines of both logs."""
    return "Notebook for {} failed: {}.\n\nLast lines of {}:\n{}\nLast lines of {}:\n{}".format(
        name,
        reason,
        folder.stderr_log,
        log_tail(folder.stderr_log),
        folder.launch_log,
        log_tail(folder.launch_log),
    )

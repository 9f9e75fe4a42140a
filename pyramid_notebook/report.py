"""Notebooks as tables, for operators: shared by the command line and the admin page."""

import time

#: Columns of the running notebooks' table; the launch URL is the page the user opened the shell from.
COLUMNS = ("user", "pid", "port", "started", "last activity", "memory", "launch URL")

#: Columns of the table of users whose notebook does not run (stopped, failed, or not started yet).
STOPPED_COLUMNS = ("user", "state", "stopped", "reason", "launch URL")


def moment(timestamp: float | None, now: float) -> str:
    """A timestamp as local time with how long ago it was, or ``-`` when there is none."""
    if not timestamp:
        return "-"
    seconds = max(0, int(now - timestamp))
    if seconds < 120:
        ago = "{} s ago".format(seconds)
    elif seconds < 7200:
        ago = "{} min ago".format(seconds // 60)
    else:
        ago = "{:.1f} h ago".format(seconds / 3600)
    return "{} ({})".format(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)), ago)


def has_process(status: dict) -> bool:
    """True for an entry of ``NotebookManager.list_notebooks`` whose notebook process runs."""
    return "pid" in status


def split_statuses(statuses: list[dict]) -> tuple[list[dict], list[dict]]:
    """The running notebooks, by name, and the others, most recently stopped first."""
    running = [status for status in statuses if has_process(status)]
    stopped = [status for status in statuses if not has_process(status)]
    return running, sorted(stopped, key=lambda status: -(status.get("stopped_at") or 0))


def status_row(status: dict, now: float | None = None) -> tuple[str, ...]:
    """One running notebook's status (from NotebookManager.get_notebook_status) as display strings, in COLUMNS order."""
    now = time.time() if now is None else now
    return (
        status["name"],
        str(status["pid"]),
        str(status["http_port"]),
        moment(status.get("started"), now),
        moment(status.get("last_activity"), now),
        "{:.0f} MB ({} kernel{})".format(
            status["memory_rss"] / 1024 / 1024, status["kernels"], "" if status["kernels"] == 1 else "s"
        ),
        status.get("launch_url") or "-",
    )


def stopped_row(status: dict, now: float | None = None) -> tuple[str, ...]:
    """A notebook that does not run: who, its state, when and why it ended, where it was launched from.

    In STOPPED_COLUMNS order; ``-`` where the context file does not say.
    """
    now = time.time() if now is None else now
    return (
        status["name"],
        status.get("state") or "-",
        moment(status.get("stopped_at"), now),
        status.get("stopped_reason") or "-",
        status.get("launch_url") or "-",
    )


def text_table(rows: list[tuple[str, ...]], columns: tuple[str, ...] = COLUMNS) -> str:
    """Rows under the ``columns`` heading, padded into columns."""
    table = [columns, *rows]
    widths = [max(len(row[index]) for row in table) for index in range(len(columns))]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in table)
    return "\n".join(line.rstrip() for line in lines)

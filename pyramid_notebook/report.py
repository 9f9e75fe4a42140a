"""Running notebooks as a table, for operators: shared by the command line and the admin page."""

import time

COLUMNS = ("user", "pid", "port", "started", "last activity", "memory", "context")


def _moment(timestamp: float | None, now: float) -> str:
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


def status_row(status: dict, now: float | None = None) -> tuple[str, ...]:
    """One notebook's status (from NotebookManager.get_notebook_status) as display strings, in COLUMNS order."""
    now = time.time() if now is None else now
    return (
        status["name"],
        str(status["pid"]),
        str(status["http_port"]),
        _moment(status.get("started"), now),
        _moment(status.get("last_activity"), now),
        "{:.0f} MB ({} kernel{})".format(
            status["memory_rss"] / 1024 / 1024, status["kernels"], "" if status["kernels"] == 1 else "s"
        ),
        status.get("context_hash") or "-",
    )


def text_table(rows: list[tuple[str, ...]]) -> str:
    """Rows under the COLUMNS heading, padded into columns."""
    table = [COLUMNS, *rows]
    widths = [max(len(row[index]) for row in table) for index in range(len(COLUMNS))]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in table)
    return "\n".join(line.rstrip() for line in lines)

"""The one error the manager raises for a notebook that did not come up.

Its own module so that the port allocator, the launcher and the manager can
all raise it without importing each other.
"""


class NotebookStartError(RuntimeError):
    """A notebook did not come up; the message says why, or where to read why."""

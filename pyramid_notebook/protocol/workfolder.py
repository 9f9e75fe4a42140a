"""The layout of a user's work folder, named once for both sides.

::

    <notebook folder>/<user>/            the work folder (mode 0700)
        notebook.pid                     the daemon's pid
        notebook.lock                    the user's lock: one start or stop at a time
        context.json                     the context (holds the token; mode 0600)
        notebook.launch.log              what the launcher said
        notebook.stdout.log              the server's output
        notebook.stderr.log              the server's log
        .ipython/ .jupyter/ .local/      IPython and Jupyter settings and runtime files
        notebooks/                       Jupyter's root: all the user sees and edits

Jupyter's contents API and ``/files/`` reach only ``notebooks/``, so the
context file and the pid file stay out of the notebook's reach.
"""
from dataclasses import dataclass
from pathlib import Path

CONTEXT_FILE_NAME = "context.json"
PID_FILE_NAME = "notebook.pid"
LOCK_FILE_NAME = "notebook.lock"
LAUNCH_LOG_NAME = "notebook.launch.log"
STDOUT_LOG_NAME = "notebook.stdout.log"
STDERR_LOG_NAME = "notebook.stderr.log"
NOTEBOOK_ROOT_NAME = "notebooks"


@dataclass(frozen=True)
class WorkFolder:
    """One user's work folder and the paths of everything in it."""

    path: Path

    @property
    def pid_file(self) -> Path:
        return self.path / PID_FILE_NAME

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE_NAME

    @property
    def context_file(self) -> Path:
        return self.path / CONTEXT_FILE_NAME

    @property
    def launch_log(self) -> Path:
        return self.path / LAUNCH_LOG_NAME

    @property
    def stdout_log(self) -> Path:
        return self.path / STDOUT_LOG_NAME

    @property
    def stderr_log(self) -> Path:
        return self.path / STDERR_LOG_NAME

    @property
    def notebook_root(self) -> Path:
        """Jupyter's root folder: where the user's notebooks are."""
        return self.path / NOTEBOOK_ROOT_NAME

    @classmethod
    def of_pid_file(cls, pid_file: Path) -> "WorkFolder":
        """The work folder a pid file sits in (the daemon's command line names only the pid file)."""
        return cls(Path(pid_file).absolute().parent)

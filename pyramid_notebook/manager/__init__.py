"""The web side's notebook manager: one notebook server per site user, started, reused and stopped.

One module per job, so that each can be read, tested and replaced alone:

* :mod:`.manager`: :class:`NotebookManager`: start, reuse, stop, stop all, list.
* :mod:`.state`: the pure decision of a notebook's state from its context
  (:func:`notebook_state`), testable without processes.
* :mod:`.store`: the state's one small interface (:class:`NotebookStore`:
  contexts, locks, ports, liveness) and :class:`FileStore`, the work folders;
  a shared database for several web nodes can slot in beside it.
* :mod:`.ports`: handing out localhost ports.
* :mod:`.daemons`: the daemon's command line, spawning it, ending it.
* :mod:`.options`: the defaults (``DEFAULT_*``, read by the site's settings too) and their checks.
* :mod:`.names`: user names as folder names; :mod:`.locks`: the cross-process lock;
  :mod:`.logs`: what a failed start's logs say; :mod:`.errors`: :class:`NotebookStartError`.
"""
from pyramid_notebook.manager.errors import NotebookStartError
from pyramid_notebook.manager.manager import NotebookManager
from pyramid_notebook.manager.names import check_name
from pyramid_notebook.manager.options import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_KILL_TIMEOUT,
    DEFAULT_MIN_PORT,
    DEFAULT_PORT_RANGE,
    DEFAULT_START_TIMEOUT,
    ManagerOptions,
    default_python,
)
from pyramid_notebook.manager.state import FAILED, RUNNING, STARTING, STOPPED, notebook_state
from pyramid_notebook.manager.store import FileStore, NotebookStore

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_KILL_TIMEOUT",
    "DEFAULT_MIN_PORT",
    "DEFAULT_PORT_RANGE",
    "DEFAULT_START_TIMEOUT",
    "FAILED",
    "RUNNING",
    "STARTING",
    "STOPPED",
    "FileStore",
    "ManagerOptions",
    "NotebookManager",
    "NotebookStartError",
    "NotebookStore",
    "check_name",
    "default_python",
    "notebook_state",
]

"""Every test cleans up the notebooks it started: one ``stop_all``, and what it checks afterwards."""
from pathlib import Path

import psutil
import requests

from pyramid_notebook.manager import NotebookManager
from pyramid_notebook.protocol.context import NotebookContext
from pyramid_notebook.protocol.processes import is_gone
from pyramid_notebook.protocol.processes import process_tree as daemon_process_tree

#: The stop reason recorded for notebooks the tests' clean-up stops.
STOPPED_BY_TESTS = "stopped by the test suite's clean-up"


def process_tree(pid: int | None) -> list[psutil.Process]:
    """The process and its descendants (a notebook's kernels), or nothing."""
    return [] if pid is None else daemon_process_tree(pid)


def is_alive(process: psutil.Process) -> bool:
    """False once the process has exited; a zombie waiting to be reaped has exited."""
    return not is_gone(process)


def user_names(manager: NotebookManager) -> list[str]:
    """The users with a work folder under the manager's notebook folder."""
    if not manager.notebook_folder.is_dir():
        return []
    return sorted(
        folder.name
        for folder in manager.notebook_folder.iterdir()
        if folder.is_dir() and not folder.name.startswith(".")
    )


def stop_all(notebooks: NotebookManager | Path) -> list[str]:
    """Stop every notebook of a manager (or under a notebook folder); return the users whose processes live on.

    The stopping is ``NotebookManager.stop_all``, the same as the CLI's and
    the admin page's.  What it leaves is checked here, on the processes
    themselves (each daemon and its kernels, looked up before the stop), not
    by asking the manager.
    """
    if isinstance(notebooks, NotebookManager):
        manager = notebooks
    elif Path(notebooks).is_dir():
        manager = NotebookManager(notebooks)
    else:
        return []
    processes = {name: process_tree(manager.get_pid(name)) for name in user_names(manager)}
    manager.stop_all(STOPPED_BY_TESTS)
    return [
        name
        for name, tree in processes.items()
        if manager.get_pid(name) is not None or any(is_alive(process) for process in tree)
    ]


def notebook_api(context: NotebookContext) -> str:
    """The notebook's own HTTP base, reached directly with its token (for set-up and checks, not under test)."""
    return "http://127.0.0.1:{}{}".format(context.http_port, context.notebook_path)


def token_header(context: NotebookContext) -> dict:
    """The header that authenticates straight to the notebook."""
    return {"Authorization": "token " + context.token}


def kernel_is_connected(manager: NotebookManager, username: str) -> bool:
    """True if the user's notebook server has an idle kernel with a browser connected to it."""
    context = manager.get_context(username)
    if context is None or context.http_port is None:
        return False
    try:
        kernels = requests.get(notebook_api(context) + "api/kernels", headers=token_header(context), timeout=5).json()
    except (requests.RequestException, ValueError):
        return False
    return any(kernel["connections"] > 0 and kernel["execution_state"] == "idle" for kernel in kernels)

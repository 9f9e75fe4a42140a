"""Fixtures shared by the tests, and the check that no test leaves a notebook running."""

import os
import re
import uuid

import psutil
import pytest
import webtest

from pyramid_notebook.notebookmanager import NotebookManager
from pyramid_notebook.waiting import wait_for

#: Command lines of the processes a notebook consists of.
NOTEBOOK_PROCESS = re.compile(r"notebook_daemon|jupyter[-_ ](notebook|server|lab)|ipykernel_launcher")

#: Seconds a stopped notebook's processes may take to disappear.
LEAK_GRACE_SECONDS = 15

#: Set in this test session's environment; every process it starts, however
#: indirectly (daemons, kernels, uWSGI workers), inherits it.  That tells this
#: session's processes from those of anything else running on the machine.
SESSION_MARKER = "PYRAMID_NOTEBOOK_TEST_SESSION"


def notebook_processes(marker: str) -> dict[int, str]:
    """Live notebook servers and kernels started by the test session with this marker: pid to command line."""
    found = {}
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        command_line = " ".join(process.info["cmdline"] or ())
        if process.info["status"] == psutil.STATUS_ZOMBIE or not NOTEBOOK_PROCESS.search(command_line):
            continue
        try:
            if process.environ().get(SESSION_MARKER) == marker:
                found[process.info["pid"]] = command_line
        except psutil.Error:
            continue
    return found


def pytest_sessionstart(session):
    os.environ[SESSION_MARKER] = uuid.uuid4().hex


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if a test left a notebook or kernel process behind, and end those processes."""
    marker = os.environ[SESSION_MARKER]
    left = wait_for(lambda: not notebook_processes(marker), LEAK_GRACE_SECONDS) is None and notebook_processes(marker)
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    reporter.write_line("FAILED: tests left notebook processes running (ended now):", red=True)
    for pid, line in sorted(left.items()):
        reporter.write_line("    {} {}".format(pid, line[:200]))
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    session.exitstatus = 1


def stop_all(manager: NotebookManager) -> None:
    """Stop every notebook under the manager's folder."""
    for folder in manager.notebook_folder.iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            manager.stop_notebook(folder.name)


@pytest.fixture
def notebook_folder(tmp_path):
    return tmp_path / "notebooks"


@pytest.fixture
def manager(notebook_folder):
    """A manager on a fresh folder; every notebook it started is stopped afterwards."""
    notebook_manager = NotebookManager(notebook_folder, min_port=42000, port_range=500, kill_timeout=600)
    yield notebook_manager
    stop_all(notebook_manager)


@pytest.fixture
def settings(notebook_folder):
    """Settings for the test site (tests/site.py)."""
    return {
        "pyramid_notebook.notebook_folder": str(notebook_folder),
        "pyramid_notebook.min_port": "42000",
        "pyramid_notebook.port_range": "500",
    }


def make_app(settings: dict):
    """The test site under WebTest; stops its notebooks afterwards.  A generator, for fixtures."""
    from tests import site

    app = webtest.TestApp(site.main({}, **settings))
    yield app
    stop_all(app.app.registry.notebook_manager)


@pytest.fixture
def app(settings):
    yield from make_app(settings)

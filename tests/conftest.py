"""Fixtures shared by the tests, the ``unit`` marker, and the check that no test leaves a notebook running."""

import os
import re
import uuid
from pathlib import Path

import psutil
import pytest

# The shared helpers assert too: have pytest rewrite their asserts, which it
# does only for modules registered before they are first imported.
pytest.register_assert_rewrite("tests.support")

from pyramid_notebook.manager import NotebookManager  # noqa: E402
from pyramid_notebook.waiting import wait_for  # noqa: E402
from tests.support.notebooks import stop_all  # noqa: E402
from tests.support.site import site_app  # noqa: E402

pytest_plugins = ["tests.support.browser_artifacts"]

#: The fast unit tests (``make test-fast``, ``pytest -m unit``): no notebook,
#: server, socket or browser.  Every test of these modules gets the ``unit``
#: marker; a test elsewhere may carry ``@pytest.mark.unit`` itself.
UNIT_TEST_MODULES = frozenset(
    {
        "test_settings.py",
        "test_websocket_frames.py",
        "test_state.py",
        "test_server_units.py",
        "test_web_units.py",
        "test_routes.py",
    }
)

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


def pytest_collection_modifyitems(items):
    """Mark every test of the unit test modules with ``unit``."""
    for item in items:
        if Path(str(item.fspath)).name in UNIT_TEST_MODULES:
            item.add_marker(pytest.mark.unit)


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


@pytest.fixture
def notebook_folder(tmp_path):
    return tmp_path / "notebooks"


@pytest.fixture
def manager(notebook_folder):
    """A manager on a fresh folder; every notebook it started is stopped afterwards."""
    notebook_manager = NotebookManager(notebook_folder, min_port=22000, port_range=500, kill_timeout=600)
    yield notebook_manager
    stop_all(notebook_manager)


@pytest.fixture
def settings(notebook_folder):
    """Settings for the test site (tests/support/site.py)."""
    return {
        "pyramid_notebook.notebook_folder": str(notebook_folder),
        "pyramid_notebook.min_port": "22000",
        "pyramid_notebook.port_range": "500",
    }


@pytest.fixture
def app(settings):
    """The test site under WebTest; its notebooks are stopped afterwards."""
    with site_app(settings) as test_app:
        yield test_app

"""Every failure to start is reported at once, with its reason, and leaves nothing running."""

import time

import psutil
import pytest

from pyramid_notebook.manager import FAILED, STARTING, NotebookManager, NotebookStartError
from pyramid_notebook.protocol.context import STOPPED_START_FAILED
from pyramid_notebook.protocol.processes import find_daemons
from pyramid_notebook.waiting import wait_for
from tests.support.notebooks import stop_all

#: Seconds within which a start failure must be shown once its cause is known (the issue's bound).
FAILURE_SHOWN_WITHIN = 5


def make_manager(notebook_folder, **options) -> NotebookManager:
    return NotebookManager(notebook_folder, min_port=22000, port_range=500, kill_timeout=600, **options)


@pytest.fixture
def managers(notebook_folder):
    """Makes managers with the given options; stops their notebooks afterwards."""
    made = []

    def make(**options):
        made.append(make_manager(notebook_folder, **options))
        return made[-1]

    yield make
    for manager in made:
        stop_all(manager)


def wait_until_settled(manager: NotebookManager, name: str, timeout: float) -> tuple[str, str] | None:
    """The user's (state, reason) once the start has succeeded or failed; None if it still starts after ``timeout``."""

    def settled():
        state = manager.get_state(name)
        return state if state[0] != STARTING else None

    return wait_for(settled, timeout)


def nothing_runs_for(manager: NotebookManager, name: str) -> bool:
    return not find_daemons(manager.work_folder(name).pid_file)


def test_server_exiting_late_is_failed_at_once(managers, tmp_path):
    """A configuration that makes Jupyter exit after daemonocle's one-second check, as on a loaded machine."""
    config = tmp_path / "slow_bad_config.py"
    config.write_text('import time\ntime.sleep(2)\nc.ServerApp.max_body_size = "not a number"\n')
    manager = managers(notebook_args=["--config={}".format(config)])
    manager.start_notebook("alice", {}, wait=False)
    settled = wait_until_settled(manager, "alice", timeout=30)
    noticed = time.time()
    assert settled is not None, "still starting after 30 s"
    state, reason = settled
    assert state == FAILED
    assert "max_body_size" in reason
    server_ended = manager.work_folder("alice").stderr_log.stat().st_mtime
    assert noticed - server_ended < FAILURE_SHOWN_WITHIN
    assert manager.get_context("alice").stopped_reason == STOPPED_START_FAILED


def test_unknown_notebook_argument_fails_with_the_reason(managers):
    manager = managers(notebook_args=["--no-such-option=1"])
    with pytest.raises(NotebookStartError) as failure:
        manager.start_notebook("alice", {})
    assert "unrecognized arguments: --no-such-option=1" in str(failure.value)
    assert manager.get_context("alice").token not in str(failure.value)
    assert nothing_runs_for(manager, "alice")


def test_missing_python_is_a_start_error(managers, tmp_path):
    missing = tmp_path / "no-such-python"
    manager = managers(python=str(missing))
    with pytest.raises(NotebookStartError) as failure:
        manager.start_notebook_on_demand("alice", {}, wait=False)
    assert str(missing) in str(failure.value)
    state, reason = manager.get_state("alice")
    assert state == FAILED
    assert str(missing) in reason
    assert manager.get_context("alice").token not in str(failure.value)


@pytest.mark.parametrize("where", ["work folder", "notebook folder"])
def test_unwritable_folder_is_a_start_error(managers, notebook_folder, where):
    manager = managers()
    # Tests run as root, which ignores permissions: a regular file where a
    # folder must go makes the same OSError for everyone.
    blocked = manager.get_work_folder("alice") if where == "work folder" else notebook_folder
    if where == "notebook folder":
        notebook_folder.rmdir()
    blocked.write_text("not a folder")
    try:
        with pytest.raises(NotebookStartError) as failure:
            manager.start_notebook_on_demand("alice", {}, wait=False)
    finally:
        blocked.unlink()
        notebook_folder.mkdir(exist_ok=True)
    assert str(blocked) in str(failure.value)


@pytest.fixture
def hanging_config(tmp_path):
    """notebook_args for a server that hangs while it starts (its configuration file never finishes)."""
    config = tmp_path / "hanging_config.py"
    config.write_text("import time\ntime.sleep(600)\n")
    return ["--config={}".format(config)]


def test_timed_out_start_leaves_nothing_running(managers, hanging_config):
    manager = managers(start_timeout=1, notebook_args=hanging_config)
    with pytest.raises(NotebookStartError, match="did not start within 1 seconds"):
        manager.start_notebook("alice", {})
    assert nothing_runs_for(manager, "alice")
    assert manager.get_context("alice").stopped_reason == STOPPED_START_FAILED


def test_timed_out_start_behind_the_progress_page_is_stopped(managers, hanging_config):
    """The non-blocking launch: the status poll finds the timeout and ends the start."""
    manager = managers(start_timeout=1, notebook_args=hanging_config)
    manager.start_notebook("alice", {}, wait=False)
    assert wait_for(lambda: manager.get_pid("alice"), 10)
    state, reason = wait_until_settled(manager, "alice", timeout=10)
    assert state == FAILED
    assert "did not start within 1 seconds" in reason
    assert nothing_runs_for(manager, "alice")
    assert manager.get_state("alice")[0] == FAILED


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -1])
def test_start_timeout_must_be_a_positive_number(notebook_folder, value):
    with pytest.raises(ValueError, match="start_timeout"):
        make_manager(notebook_folder, start_timeout=value)


def test_stop_of_a_hung_start_returns(managers, hanging_config):
    """A server that hangs while starting is stopped within the stop grace period."""
    manager = managers(notebook_args=hanging_config)
    manager.start_notebook("alice", {}, wait=False)
    assert wait_for(lambda: manager.get_pid("alice"), 10)
    daemon = psutil.Process(manager.get_pid("alice"))
    manager.stop_notebook("alice")
    assert not daemon.is_running() or daemon.status() == psutil.STATUS_ZOMBIE
    assert nothing_runs_for(manager, "alice")

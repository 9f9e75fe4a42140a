"""The state of a notebook decided from its context alone: every state and problem, without a process."""

import inspect

import pytest

from pyramid_notebook.manager import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_KILL_TIMEOUT,
    DEFAULT_MIN_PORT,
    DEFAULT_PORT_RANGE,
    DEFAULT_START_TIMEOUT,
    FAILED,
    RUNNING,
    STARTING,
    STOPPED,
    ManagerOptions,
    NotebookManager,
    notebook_state,
)
from pyramid_notebook.manager.state import (
    CRASHED,
    LAUNCH_UNCONFIRMED,
    START_DIED,
    START_TIMED_OUT,
    crash_stop_reason,
    holds_port,
)
from pyramid_notebook.protocol.context import (
    STOPPED_BY_ADMIN,
    STOPPED_CRASH,
    STOPPED_PID_FILE_DAMAGED,
    NotebookContext,
)

NOW = 1_000_000.0
START_TIMEOUT = 60


def launched(**fields) -> NotebookContext:
    """The context of a run the manager launched a second ago, with ``fields`` set as the run went on."""
    values = {"token": "t", "http_port": 22000, "launched_at": NOW - 1, "launcher_pid": 100}
    values.update(fields)
    return NotebookContext(**values)


def state(context, pid_alive, locked=False, now=NOW):
    return notebook_state(context, pid_alive, now, START_TIMEOUT, locked)


# Starting


def test_a_launch_whose_launcher_runs_is_starting():
    assert state(launched(), pid_alive=True) == (STARTING, "", None)


def test_a_daemon_that_recorded_its_pid_is_starting_until_ready():
    assert state(launched(pid=200), pid_alive=True) == (STARTING, "", None)


def test_a_launch_not_yet_confirmed_is_starting_for_readers_without_the_lock():
    """Another process may be between writing the context and spawning the launcher."""
    assert state(launched(launcher_pid=None), pid_alive=False) == (STARTING, "", LAUNCH_UNCONFIRMED)


# Running and crashed


def test_ready_and_alive_is_running():
    assert state(launched(pid=200, ready=True), pid_alive=True) == (RUNNING, "", None)


def test_ready_but_gone_is_a_crash():
    assert state(launched(pid=200, ready=True), pid_alive=False) == (STOPPED, "the notebook has ended", CRASHED)


def test_ready_without_a_recorded_pid_is_not_running():
    """A context that says ready but names no daemon cannot be trusted to describe a live one."""
    assert state(launched(ready=True), pid_alive=True).problem == CRASHED


def test_a_crash_with_the_server_still_running_means_the_pid_file_was_damaged():
    assert crash_stop_reason(server_runs_on=False) == STOPPED_CRASH
    assert crash_stop_reason(server_runs_on=True) == STOPPED_PID_FILE_DAMAGED


# Starts that fail


def test_a_daemon_that_ended_while_starting_died():
    observed = state(launched(pid=200), pid_alive=False)
    assert observed == (FAILED, "the notebook process ended while starting", START_DIED)


def test_a_launcher_that_ended_before_its_daemon_showed_died():
    observed = state(launched(), pid_alive=False)
    assert observed == (FAILED, "the notebook daemon ended while starting", START_DIED)


def test_a_launch_cut_short_is_seen_under_the_lock():
    observed = state(launched(launcher_pid=None), pid_alive=False, locked=True)
    assert observed.state == FAILED
    assert observed.problem == START_DIED
    assert "cut short" in observed.reason


@pytest.mark.parametrize("fields", [{}, {"pid": 200}])
def test_a_start_past_its_timeout_timed_out(fields):
    late = NOW + START_TIMEOUT + 1
    observed = state(launched(**fields), pid_alive=True, now=late)
    assert observed == (FAILED, "the notebook did not start within 60 seconds", START_TIMED_OUT)


def test_a_start_exactly_at_its_timeout_still_starts():
    assert state(launched(), pid_alive=True, now=NOW - 1 + START_TIMEOUT).state == STARTING


def test_a_recorded_failure_is_failed_whatever_the_processes():
    context = launched(pid=200, start_error="no such option", stopped_at=NOW, stopped_reason="it did not start")
    for alive in (True, False):
        assert state(context, pid_alive=alive) == (FAILED, "no such option", None)


# Stopped and damaged


def test_no_context_is_stopped():
    """A missing or damaged context file reads as None: nothing can be trusted to run from it."""
    assert state(None, pid_alive=False) == (STOPPED, "no notebook is running", None)


def test_a_recorded_stop_says_why():
    context = launched(pid=200, ready=True, stopped_at=NOW, stopped_reason=STOPPED_BY_ADMIN)
    assert state(context, pid_alive=True) == (STOPPED, "the notebook stopped: " + STOPPED_BY_ADMIN, None)


def test_a_recorded_stop_without_a_reason():
    assert state(launched(stopped_at=NOW), pid_alive=False) == (STOPPED, "no notebook is running", None)


# Ports


def test_running_and_starting_notebooks_hold_their_ports():
    assert holds_port(launched(pid=200, ready=True), True, NOW, START_TIMEOUT)
    assert holds_port(launched(), True, NOW, START_TIMEOUT)
    # Not spawned yet, but recent: its launcher may be about to start.
    assert holds_port(launched(launcher_pid=None), False, NOW, START_TIMEOUT)


@pytest.mark.parametrize(
    "context, pid_alive",
    [
        (None, False),
        (launched(http_port=None), True),
        (launched(pid=200, ready=True, stopped_at=NOW), True),
        (launched(start_error="failed"), True),
        (launched(pid=200), False),
        (launched(launched_at=NOW - START_TIMEOUT - 5), False),
    ],
    ids=["no context", "no port", "stopped", "failed", "daemon gone", "old start, nothing alive"],
)
def test_ended_notebooks_hold_no_port(context, pid_alive):
    assert not holds_port(context, pid_alive, NOW, START_TIMEOUT)


# Defaults, defined once


def test_the_manager_defaults_are_the_shared_constants():
    defaults = {
        name: parameter.default for name, parameter in inspect.signature(NotebookManager).parameters.items()
    }
    assert defaults["idle_timeout"] == DEFAULT_IDLE_TIMEOUT == 1800
    assert defaults["kill_timeout"] == DEFAULT_KILL_TIMEOUT
    assert defaults["start_timeout"] == DEFAULT_START_TIMEOUT
    assert defaults["min_port"] == DEFAULT_MIN_PORT
    assert defaults["port_range"] == DEFAULT_PORT_RANGE
    assert ManagerOptions().idle_timeout == DEFAULT_IDLE_TIMEOUT


@pytest.mark.parametrize("what", ["start_timeout", "idle_timeout"])
def test_options_refuse_endless_waits(what):
    with pytest.raises(ValueError, match=what):
        ManagerOptions(**{what: float("nan")})

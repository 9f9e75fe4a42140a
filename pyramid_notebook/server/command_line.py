"""The notebook daemon's command line.

::

    notebook_daemon start|fg PID_FILE WORK_FOLDER PORT KILL_TIMEOUT [extra notebook arguments]
    notebook_daemon stop|status PID_FILE

The manager builds this command line and :mod:`pyramid_notebook.protocol.processes`
recognises a running daemon by it (the action, then the absolute pid file), so
its shape is part of the protocol between the two sides.  Everything after
KILL_TIMEOUT goes to Jupyter exactly as given, ``--`` and options included.

Every mistake raises :class:`UsageError` with a message naming what was wrong;
nothing here exits the process or prints.
"""
import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from pyramid_notebook.protocol.processes import DAEMON_MODULE, SERVER_ACTIONS

#: The actions that act on a running daemon through its pid file.
CONTROL_ACTIONS = ("stop", "status")

#: PID_FILE WORK_FOLDER PORT KILL_TIMEOUT
SERVER_ARGUMENT_COUNT = 4

USAGE = (
    "    notebook_daemon.py start|fg PID_FILE WORK_FOLDER PORT KILL_TIMEOUT [extra notebook arguments]\n"
    "    notebook_daemon.py stop|status PID_FILE"
)


class UsageError(Exception):
    """The command line is wrong; the message says how."""


@dataclass(frozen=True)
class DaemonCommand:
    """One checked command line of the daemon."""

    action: str
    #: Absolute: a running daemon is recognised by its command line naming it.
    pid_file: Path
    #: Absolute; for ``stop`` and ``status``, the pid file's folder.
    work_folder: Path
    port: int = 0
    kill_timeout: int = 0
    #: Passed to Jupyter after the daemon's own arguments.
    extra: tuple[str, ...] = ()

    @property
    def runs_server(self) -> bool:
        """True for ``start`` and ``fg``, which run a notebook server."""
        return self.action in SERVER_ACTIONS

    @property
    def daemonocle_action(self) -> str:
        """daemonocle's name for the action: ``fg`` is a ``start`` that does not detach."""
        return "start" if self.action == "fg" else self.action

    def argv(self, python: str = sys.executable) -> list[str]:
        """The full command line that runs this command, with absolute paths.

        A server started with a relative pid file re-executes itself with
        this, so that :mod:`pyramid_notebook.protocol.processes` can tell it
        is the daemon for that pid file.
        """
        arguments = [self.action, str(self.pid_file)]
        if self.runs_server:
            arguments += [str(self.work_folder), str(self.port), str(self.kill_timeout), *self.extra]
        return [python, "-m", DAEMON_MODULE, *arguments]


class _ActionParser(argparse.ArgumentParser):
    """An argparse parser for one action that raises UsageError with a message of its own instead of exiting."""

    def __init__(self, action: str, mistake: str):
        super().__init__(prog="notebook_daemon.py " + action, add_help=False, allow_abbrev=False)
        self.mistake = mistake

    def error(self, message: str):
        raise UsageError(self.mistake)


def _server_parser(action: str) -> argparse.ArgumentParser:
    parser = _ActionParser(action, "{} needs PID_FILE WORK_FOLDER PORT KILL_TIMEOUT".format(action))
    parser.add_argument("pid_file", metavar="PID_FILE")
    parser.add_argument("work_folder", metavar="WORK_FOLDER")
    parser.add_argument("port", metavar="PORT")
    parser.add_argument("kill_timeout", metavar="KILL_TIMEOUT")
    return parser


def _control_parser(action: str) -> argparse.ArgumentParser:
    parser = _ActionParser(action, "{} takes exactly one argument, PID_FILE".format(action))
    parser.add_argument("pid_file", metavar="PID_FILE")
    return parser


def _whole_numbers(port: str, kill_timeout: str) -> tuple[int, int]:
    try:
        return int(port), int(kill_timeout)
    except ValueError:
        message = "PORT and KILL_TIMEOUT must be whole numbers, got {!r} and {!r}".format(port, kill_timeout)
        raise UsageError(message) from None


def parse_command_line(argv: list[str]) -> DaemonCommand:
    """Check the daemon's arguments (without the program name); raise UsageError saying what is wrong."""
    if not argv:
        raise UsageError("no action given")
    action, arguments = argv[0], list(argv[1:])
    if action in CONTROL_ACTIONS:
        pid_file = Path(_control_parser(action).parse_args(arguments).pid_file).absolute()
        return DaemonCommand(action=action, pid_file=pid_file, work_folder=pid_file.parent)
    if action not in SERVER_ACTIONS:
        raise UsageError("unknown action {!r}: use start, fg, stop or status".format(action))
    # argparse sees only the daemon's own four arguments.  What follows is
    # Jupyter's and passes as it is: argparse would take a ``--`` right after
    # KILL_TIMEOUT as its own separator and drop it (argparse.REMAINDER does).
    own, extra = arguments[:SERVER_ARGUMENT_COUNT], arguments[SERVER_ARGUMENT_COUNT:]
    parsed = _server_parser(action).parse_args(own)
    port, kill_timeout = _whole_numbers(parsed.port, parsed.kill_timeout)
    if not 0 < port < 65536:
        raise UsageError("PORT must be between 1 and 65535, got {}".format(port))
    if kill_timeout <= 0:
        raise UsageError("KILL_TIMEOUT must be a positive number of seconds, got {}".format(kill_timeout))
    work_folder = Path(parsed.work_folder).absolute()
    if not work_folder.is_dir():
        raise UsageError("WORK_FOLDER {} is not a folder".format(work_folder))
    return DaemonCommand(
        action=action,
        pid_file=Path(parsed.pid_file).absolute(),
        work_folder=work_folder,
        port=port,
        kill_timeout=kill_timeout,
        extra=tuple(extra),
    )

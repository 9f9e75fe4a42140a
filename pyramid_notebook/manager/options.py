"""The manager's options and their defaults, defined once.

The site's settings (:mod:`pyramid_notebook.settings`) and a manager built
in code (tests, scripts, benchmarks) must start from the same values: a
default that differs between the two makes a notebook behave differently
depending on who built the manager.  Both read the ``DEFAULT_*`` constants
here, and :class:`ManagerOptions` checks every value once, at construction.
"""
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: Seconds after which a notebook ends itself, used or not.
DEFAULT_KILL_TIMEOUT = 3600
#: Seconds without use after which a notebook ends itself; 0 turns this off.
DEFAULT_IDLE_TIMEOUT = 1800
#: Seconds a new notebook may take to answer before its start counts as failed.
DEFAULT_START_TIMEOUT = 60
#: The first localhost port handed out to notebooks.  Below Linux's range of
#: ephemeral ports (32768-60999 by default), which outgoing connections take
#: at random: one might take a notebook's port between its choice and the
#: server's bind.
DEFAULT_MIN_PORT = 28000
#: How many ports from the first on may be used: the most notebooks at once.
DEFAULT_PORT_RANGE = 1000


def default_python() -> str:
    """The Python of this environment, even when this process is not a Python binary.

    Under uWSGI ``sys.executable`` is the uwsgi binary, which cannot run
    ``-m pyramid_notebook.server.notebook_daemon``; the environment's own
    interpreter sits in its ``bin`` folder.
    """
    executable = Path(sys.executable)
    if executable.name.startswith("python"):
        return str(executable)
    for name in ("python3", "python"):
        candidate = Path(sys.exec_prefix) / "bin" / name
        if candidate.exists():
            return str(candidate)
    raise RuntimeError(
        "No Python interpreter found for the notebook daemon next to {}: set pyramid_notebook.python".format(
            sys.exec_prefix
        )
    )


def seconds(value: float, what: str, allow_zero: bool = False) -> float:
    """``value`` as a finite number of seconds, else ValueError naming ``what``.

    NaN or infinity would turn every wait on it into a wait forever.
    """
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise ValueError(
            "{} must be a finite number of seconds{}, got {!r}".format(what, "" if allow_zero else " above 0", value)
        )
    return number


@dataclass(frozen=True)
class ManagerOptions:
    """How a manager runs its notebooks; every value checked once, here.

    :param min_port: the first localhost port handed out.
    :param port_range: how many ports, from ``min_port`` on, may be used.
    :param kill_timeout: seconds after which a notebook ends itself, used or not.
    :param python: the interpreter that runs the daemon; this environment's when empty.
    :param start_timeout: seconds a new notebook may take to answer.
    :param idle_timeout: seconds without use after which a notebook ends itself; 0 for never.
    :param notebook_args: extra command line arguments for every notebook server.
    """

    min_port: int = DEFAULT_MIN_PORT
    port_range: int = DEFAULT_PORT_RANGE
    kill_timeout: int = DEFAULT_KILL_TIMEOUT
    python: str = ""
    start_timeout: float = DEFAULT_START_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    notebook_args: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        # A frozen dataclass sets its checked values through object.__setattr__.
        checked = {
            "min_port": int(self.min_port),
            "port_range": int(self.port_range),
            "kill_timeout": int(self.kill_timeout),
            "python": self.python or default_python(),
            "start_timeout": seconds(self.start_timeout, "start_timeout"),
            "idle_timeout": seconds(self.idle_timeout, "idle_timeout", allow_zero=True),
            "notebook_args": tuple(self.notebook_args),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

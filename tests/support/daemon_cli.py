"""Run the notebook daemon's command line as the manager does: a subprocess, its output captured."""
import subprocess
import sys
from pathlib import Path

import pyramid_notebook.server.notebook_daemon as notebook_daemon

#: The daemon run as a script rather than with ``-m``.
SCRIPT = Path(notebook_daemon.__file__)


def daemon(*arguments, script: bool = False) -> subprocess.CompletedProcess:
    """``notebook_daemon`` with ``arguments``, as ``python -m`` (or as a script); waits for it to exit."""
    command = (
        [sys.executable, str(SCRIPT)] if script else [sys.executable, "-m", "pyramid_notebook.server.notebook_daemon"]
    )
    return subprocess.run(
        command + [str(argument) for argument in arguments],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )

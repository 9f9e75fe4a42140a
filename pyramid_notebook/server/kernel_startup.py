"""What every kernel of a notebook runs first: the site's startup script.

IPython runs each file in ``$IPYTHONDIR/profile_default/startup/`` in the
kernel's user namespace when the kernel starts.  The daemon writes the site's
script into a file of its own (so that tracebacks quote its lines) and puts
a short file in that folder which calls :func:`run_site_startup` on it.

This module is imported inside every kernel: it imports nothing heavy.
"""
import sys
import traceback
from pathlib import Path

#: The site's startup script, in the IPython folder.
SITE_SCRIPT_NAME = "site_startup.py"

#: The file IPython runs at every kernel start, in ``profile_default/startup``.
STARTUP_FILE_NAME = "startup.py"

#: The startup file: it leaves nothing of its own in the user's namespace.
STARTUP_FILE = """\
# Written by pyramid_notebook: runs the site's startup script {script!r} in this kernel.
from pyramid_notebook.server.kernel_startup import run_site_startup as _pyramid_notebook_run_site_startup
_pyramid_notebook_run_site_startup({script!r})
del _pyramid_notebook_run_site_startup
"""

FAILURE_HEADING = "The notebook's startup script failed:\n"


def run_site_startup(path: str, shell=None) -> None:
    """Run the site's script at ``path`` in the kernel's user namespace, keeping a failure for the first cell.

    If the script fails, what it defined so far stays, and the traceback is
    printed above the output of the first cell the user runs: a kernel log
    is where nobody would look.  ``shell`` is IPython's shell, by default
    the running one.
    """
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    try:
        source = Path(path).read_text(encoding="utf-8")
        exec(compile(source, str(path), "exec"), shell.user_ns)
    except Exception:
        show_before_first_cell(shell, FAILURE_HEADING + traceback.format_exc())


def show_before_first_cell(shell, text: str) -> None:
    """Print ``text`` on stderr just before the next cell runs, once."""

    def show(*_info) -> None:
        shell.events.unregister("pre_run_cell", show)
        print(text, file=sys.stderr)

    shell.events.register("pre_run_cell", show)


def install_kernel_startup(ipython_dir: Path, script: str) -> Path:
    """Make every kernel started with ``IPYTHONDIR=ipython_dir`` run ``script`` first; return the script's path."""
    startup_dir = ipython_dir / "profile_default" / "startup"
    startup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    site_script = ipython_dir / SITE_SCRIPT_NAME
    site_script.write_text(script, encoding="utf-8")
    (startup_dir / STARTUP_FILE_NAME).write_text(STARTUP_FILE.format(script=str(site_script)), encoding="utf-8")
    return site_script

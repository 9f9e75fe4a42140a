"""The ``[pshell] setup`` functions: the cookiecutter's, and one with clean-up (a generator)."""
from pathlib import Path

from tests.support.realapp import models

#: Setting naming the file the generator setup writes when it is closed.
CLEANUP_MARKER_SETTING = "realapp.pshell_cleanup_marker"


def setup(env):
    """The cookiecutter's setup: a transaction begun, and ``tm``, ``dbsession`` and ``models`` to hand."""
    request = env["request"]
    request.tm.begin()
    env["tm"] = request.tm
    env["dbsession"] = request.dbsession
    env["models"] = models


def setup_with_cleanup(env):
    """Like :func:`setup`, and, when the shell ends, a file that says its clean-up ran."""
    setup(env)
    env["setup_style"] = "generator"
    yield
    Path(env["registry"].settings[CLEANUP_MARKER_SETTING]).write_text("closed\n", encoding="utf-8")

"""Run the test site (:mod:`tests.support.site`) as a real waitress server in its own process.

For the streaming tests and the proxy benchmark, which measure the server
process's memory.
"""
import json
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import requests

from pyramid_notebook.waiting import wait_for
from tests.support.notebooks import stop_all
from tests.support.servers import REPOSITORY, free_port, stop_process, wait_until_serving
from tests.support.site import as_user

#: Seconds a notebook launched through the site may take to serve.
START_SECONDS = 60


@contextmanager
def running_site(notebook_folder: Path, **extra_settings):
    """Serve the test site on a free port; yield (base URL, server pid). Stops its notebooks afterwards."""
    settings = {
        "pyramid_notebook.notebook_folder": str(notebook_folder),
        "pyramid_notebook.min_port": "22500",
        "pyramid_notebook.port_range": "400",
        **extra_settings,
    }
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.support.site", str(port), json.dumps(settings)],
        cwd=REPOSITORY,
        stdin=subprocess.DEVNULL,
    )
    base = "http://127.0.0.1:{}".format(port)
    try:
        # Without a user header the proxy refuses: the site is up.
        wait_until_serving(
            server, base + "/notebook/api/status", lambda response: response.status_code == 403, "the test site"
        )
        yield base, server.pid
    finally:
        left = stop_all(notebook_folder)
        stop_process(server, signal.SIGTERM)
        assert not left, "notebooks still running for {}".format(left)


def launch(base: str, user: str) -> None:
    """Launch the user's notebook through the site and wait until it serves (the launch redirects at once)."""
    headers = as_user(user)
    requests.get(base + "/launch", headers=headers, allow_redirects=False, timeout=60).raise_for_status()
    status_url = base + "/notebook/_pyramid_notebook/status"
    state = wait_for(
        lambda: requests.get(status_url, headers=headers, timeout=10).json()["state"] != "starting", START_SECONDS
    )
    assert state and requests.get(status_url, headers=headers, timeout=10).json()["state"] == "running"

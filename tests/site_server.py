"""Run tests/site.py as a real waitress server in its own process, for streaming tests and benchmarks."""

import json
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests

from pyramid_notebook.notebookmanager import NotebookManager
from pyramid_notebook.waiting import wait_for

REPOSITORY = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_rss(pid: int) -> int:
    """The process's peak resident set size so far, in bytes (VmHWM)."""
    for line in Path("/proc/{}/status".format(pid)).read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("No VmHWM for process {}".format(pid))


@contextmanager
def running_site(notebook_folder: Path, **extra_settings):
    """Serve the test site on a free port; yield (base URL, server pid). Stops its notebooks afterwards."""
    settings = {
        "pyramid_notebook.notebook_folder": str(notebook_folder),
        "pyramid_notebook.min_port": "42500",
        "pyramid_notebook.port_range": "400",
        **extra_settings,
    }
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.site", str(port), json.dumps(settings)], cwd=REPOSITORY, stdin=subprocess.DEVNULL
    )
    base = "http://127.0.0.1:{}".format(port)

    def answers():
        try:
            return requests.get(base + "/notebook/api/status", timeout=1).status_code == 403
        except requests.ConnectionError:
            return server.poll() is not None

    try:
        assert wait_for(answers, 30) and server.poll() is None, "the test site did not start"
        yield base, server.pid
    finally:
        manager = NotebookManager(notebook_folder)
        for folder in Path(notebook_folder).iterdir():
            if folder.is_dir() and not folder.name.startswith("."):
                manager.stop_notebook(folder.name)
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            psutil.Process(server.pid).kill()
            server.wait()


def launch(base: str, user: str) -> None:
    """Launch the user's notebook through the site and wait until it serves (the launch redirects at once)."""
    headers = {"X-Test-User": user}
    requests.get(base + "/launch", headers=headers, allow_redirects=False, timeout=60).raise_for_status()
    status_url = base + "/notebook/_pyramid_notebook/status"
    state = wait_for(lambda: requests.get(status_url, headers=headers, timeout=10).json()["state"] != "starting", 60)
    assert state and requests.get(status_url, headers=headers, timeout=10).json()["state"] == "running"

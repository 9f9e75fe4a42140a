"""Cold start: from asking for a notebook to its status API answering.

Baseline: a bare ``jupyter notebook`` on the same machine, started the same
way (its own folder, a token, our base URL), timed until its status API
answers.  Median of five each, measured in the same run.
"""

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from pyramid_notebook.notebookmanager import NotebookManager, port_is_free
from pyramid_notebook.server.processes import terminate_tree
from pyramid_notebook.waiting import wait_for

RUNS = 5
TOKEN = "benchmark-token"


def answers(port: int) -> bool:
    url = "http://127.0.0.1:{}/notebook/api/status".format(port)
    try:
        return requests.get(url, headers={"Authorization": "token " + TOKEN}, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def bare_jupyter_start(folder: Path, port: int) -> float:
    jupyter = str(Path(sys.executable).with_name("jupyter"))
    started = time.perf_counter()
    server = subprocess.Popen(
        [
            jupyter,
            "notebook",
            "--no-browser",
            "--ip=127.0.0.1",
            "--port={}".format(port),
            "--port-retries=0",
            "--allow-root",
            "--IdentityProvider.token=" + TOKEN,
            "--ServerApp.base_url=/notebook/",
            "--ServerApp.root_dir={}".format(folder),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder), "JUPYTER_RUNTIME_DIR": str(folder / "runtime")},
    )
    try:
        if not wait_for(lambda: answers(port), 60):
            raise RuntimeError("bare jupyter did not answer")
        return time.perf_counter() - started
    finally:
        terminate_tree(server.pid)
        server.wait()


def manager_start(manager: NotebookManager, name: str) -> float:
    started = time.perf_counter()
    manager.start_notebook(name, {})
    elapsed = time.perf_counter() - started
    manager.stop_notebook(name)
    return elapsed


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="pn-bench-"))
    try:
        port = next(port for port in range(44000, 44100) if port_is_free(port))
        manager = NotebookManager(folder / "notebooks", min_port=44100, port_range=100)
        bare, ours = [], []
        for run in range(RUNS):
            bare.append(bare_jupyter_start(folder, port))
            ours.append(manager_start(manager, "user{}".format(run)))
        print("Cold start to /api/status answering, median of {} (seconds):".format(RUNS))
        print(
            "  {:<40} {:>7.2f}   runs: {}".format(
                "bare `jupyter notebook`", statistics.median(bare), " ".join("{:.2f}".format(value) for value in bare)
            )
        )
        print(
            "  {:<40} {:>7.2f}   runs: {}".format(
                "NotebookManager.start_notebook",
                statistics.median(ours),
                " ".join("{:.2f}".format(value) for value in ours),
            )
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

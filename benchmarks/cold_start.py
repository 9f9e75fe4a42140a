"""Cold start: from asking for a notebook to its status API answering.

Baseline: a bare ``jupyter notebook`` on the same machine, started the same
way (its own folder, a token, our base URL), timed until its status API
answers.  Median of five each, measured in the same run, taking turns.
Results go to ``benchmarks/results/cold_start.json`` and ``.png``.

    .venv/bin/python -m benchmarks.cold_start [--runs 5]
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.charts import new_figure, save_chart, value_bars
from benchmarks.results import BenchmarkRecord
from pyramid_notebook.manager import NotebookManager
from pyramid_notebook.manager.ports import port_is_free
from pyramid_notebook.protocol.context import NotebookContext
from pyramid_notebook.protocol.processes import terminate_tree
from pyramid_notebook.waiting import wait_for

NAME = "cold_start"
RUNS = 5
BARE = "bare `jupyter notebook`"
OURS = "NotebookManager.start_notebook"
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
    manager.start_notebook(name, NotebookContext())
    elapsed = time.perf_counter() - started
    manager.stop_notebook(name)
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="starts of each")
    arguments = parser.parse_args(argv)
    record = BenchmarkRecord(NAME)
    folder = Path(tempfile.mkdtemp(prefix="pn-bench-"))
    try:
        port = next(port for port in range(24000, 24100) if port_is_free(port))
        manager = NotebookManager(folder / "notebooks", min_port=24100, port_range=100)
        starts = {BARE: [], OURS: []}
        for run in range(arguments.runs):
            starts[BARE].append(bare_jupyter_start(folder, port))
            starts[OURS].append(manager_start(manager, "user{}".format(run)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("Cold start to /api/status answering, median of {} (seconds):".format(arguments.runs))
    for label, seconds in starts.items():
        runs = " ".join("{:.2f}".format(value) for value in seconds)
        print("  {:<40} {:>7.2f}   runs: {}".format(label, statistics.median(seconds), runs))
    figures = {
        label: {"median_s": round(statistics.median(seconds), 3), "runs_s": [round(value, 3) for value in seconds]}
        for label, seconds in starts.items()
    }
    ours, bare = figures[OURS]["median_s"], figures[BARE]["median_s"]
    record.save(
        {"starts": figures, "ours_median_s": ours, "bare_median_s": bare, "ratio_to_bare": round(ours / bare, 3)}
    )
    figure, (axes,) = new_figure("Cold start to api/status answering", 1, 6.0)
    value_bars(axes, list(figures), [value["median_s"] for value in figures.values()], "seconds (median)", "", "{:.2f}")
    save_chart(figure, NAME, record.machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())

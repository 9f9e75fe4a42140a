"""The HTTP proxy's cost: the same requests straight to a notebook and through the site, in the same run.

    .venv/bin/python -m benchmarks.proxy [--requests 500] [--downloads 5] [--size-mb 100]

The benchmark site is tests/support/site.py (the user comes from the
``X-Test-User`` header; no database), run twice in processes of its own and
serving the same notebook, one user's, launched through the site:

- under waitress, 8 threads (tests/support/site_server.py);
- under uWSGI with the shipped uwsgi.ini's options: 2 processes x 64 threads,
  ``http-socket``, the connection-close filter (tests/support/site_uwsgi.py).

Measured, the paths taking turns (each going first in turn, so that whatever
else the machine does falls on all of them alike):

- Small request: ``GET /notebook/api/status``, direct to the notebook's port
  with its token, through waitress and through uWSGI.  Median and p99, and
  what each proxy adds: its median (p99) minus direct's.
- Download: a random 100 MB file from the notebook's files handler, by each
  path; MB/s (median and best) and the ratio of the medians to direct's.  The
  web process's peak RSS is reset just before the downloads
  (``/proc/PID/clear_refs``) and read after them: its growth (for uWSGI, the
  worker that grew most).
- The demo route: the demo under pserve with the shipped development.ini
  (waitress, 8 threads), a ``requests.Session`` logged in through the login
  form, ``GET /notebook/api/status`` against its own notebook direct: what a
  site that copies the demo gets, its permission check included.

Each path has its own ``requests.Session`` with keep-alive.  uWSGI's
``http-socket`` closes the connection after each answer (and says so), so
every request through uWSGI opens a new connection, as any client's would.
"""
import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from benchmarks.charts import median_p99_bars, new_figure, save_chart, value_bars
from benchmarks.results import BenchmarkRecord
from pyramid_notebook.manager import NotebookManager
from pyramid_notebook.protocol.context import NotebookContext
from pyramid_notebook.protocol.processes import process_tree
from pyramid_notebook.settings import PREFIX
from pyramid_notebook.waiting import wait_for
from tests.support.demo import launch_shell
from tests.support.login import log_in_session
from tests.support.notebooks import token_header
from tests.support.pserve_site import running_pserve
from tests.support.servers import peak_rss, reset_peak_rss
from tests.support.site import as_user
from tests.support.site_server import launch, running_site
from tests.support.site_uwsgi import running_test_site_under_uwsgi
from tests.support.stats import percentile

NAME = "proxy"
REQUESTS = 500
DOWNLOADS = 20
DOWNLOAD_MB = 100
#: Requests per path before the timing starts: connections, the uWSGI workers' first requests.
WARM_UP = 30
MB = 1024 * 1024
STATUS = "/notebook/api/status"
DOWNLOAD = "/notebook/files/download.bin"
USER = "alice"
DEMO_USER = "user"
#: Notebook ports of their own, below the ephemeral ports and away from the tests' and the other benchmarks'.
SITE_PORTS = {PREFIX + "min_port": 26000, PREFIX + "port_range": 100}
DEMO_PORTS = {PREFIX + "min_port": 26100, PREFIX + "port_range": 100}
#: Seconds the notebook's kernels may take to finish their startup scripts, and
#: when they count as finished: under 5% of a core over a window of a second.
QUIET_SECONDS = 120
QUIET_WINDOW = 1.0
QUIET_CPU = 0.05

DIRECT = "direct"
WAITRESS = "waitress"
UWSGI = "uWSGI"
DEMO = "demo (pserve)"


@dataclass
class Route:
    """One way to reach the notebook: a base URL and a session that carries the path's credentials."""

    name: str
    base: str
    session: requests.Session


def new_session(headers: dict) -> requests.Session:
    """A keep-alive session that sends ``headers`` and ignores proxy settings from the environment."""
    session = requests.Session()
    session.trust_env = False
    session.headers.update(headers)
    return session


def in_turns(routes: list[Route], count: int, measure: Callable[[Route], float]) -> dict[str, list[float]]:
    """``measure`` each route ``count`` times, the routes taking turns and each going first in turn."""
    values = {route.name: [] for route in routes}
    for number in range(count):
        shift = number % len(routes)
        for route in routes[shift:] + routes[:shift]:
            values[route.name].append(measure(route))
    return values


def request_seconds(route: Route) -> float:
    """Seconds for one ``GET api/status`` by ``route``, its body read."""
    started = time.perf_counter()
    response = route.session.get(route.base + STATUS, timeout=10)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def download_rate(size: int) -> Callable[[Route], float]:
    """A measure: MB/s of one download of the ``size``-byte file by a route, checked to be whole."""

    def measure(route: Route) -> float:
        started, received = time.perf_counter(), 0
        with route.session.get(route.base + DOWNLOAD, stream=True, timeout=60) as response:
            response.raise_for_status()
            for chunk in response.iter_content(MB):
                received += len(chunk)
        elapsed = time.perf_counter() - started
        if received != size:
            raise RuntimeError("{} delivered {} of {} bytes".format(route.name, received, size))
        return received / MB / elapsed

    return measure


def latency_figures(seconds: list[float]) -> dict:
    """Median, p99 and mean in milliseconds."""
    return {
        "requests": len(seconds),
        "median_ms": round(statistics.median(seconds) * 1000, 3),
        "p99_ms": round(percentile(seconds, 99) * 1000, 3),
        "mean_ms": round(statistics.fmean(seconds) * 1000, 3),
    }


def added_latency(paths: dict[str, dict], baseline: str) -> dict[str, dict]:
    """What each path adds to ``baseline``'s median and p99, in milliseconds."""
    base = paths[baseline]
    return {
        name: {
            "median_ms": round(figures["median_ms"] - base["median_ms"], 3),
            "p99_ms": round(figures["p99_ms"] - base["p99_ms"], 3),
        }
        for name, figures in paths.items()
        if name != baseline
    }


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by the process and its descendants (the notebook server and its kernels)."""
    total = 0.0
    for process in process_tree(pid):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def wait_until_quiet(manager: NotebookManager, username: str) -> None:
    """Wait until the user's notebook and kernels use less than ``QUIET_CPU`` of a core over a second.

    Their startup (the server's, the landing kernel's startup script, which
    in the demo loads the whole site) would otherwise share the CPU with the
    first measured requests.  Jupyter's own ``execution_state`` cannot tell:
    it stays ``starting`` until a browser connects.
    """
    pid = manager.get_pid(username)
    if pid is None:
        raise RuntimeError("{}'s notebook is not running".format(username))

    last = {}

    def quiet() -> bool:
        """True when the CPU used since the last check, a window of QUIET_WINDOW, is under QUIET_CPU."""
        cpu, now = tree_cpu_seconds(pid), time.perf_counter()
        rate = (cpu - last["cpu"]) / (now - last["at"]) if last else None
        last.update(cpu=cpu, at=now)
        return rate is not None and rate < QUIET_CPU

    if not wait_for(quiet, QUIET_SECONDS, interval=QUIET_WINDOW):
        raise RuntimeError("{}'s notebook was still busy after {} s".format(username, QUIET_SECONDS))


def direct_route(context: NotebookContext) -> Route:
    """Straight to the notebook's port with its token, as the proxy itself reaches it."""
    return Route(DIRECT, "http://127.0.0.1:{}".format(context.http_port), new_session(token_header(context)))


def measure_small_requests(routes: list[Route], count: int) -> dict[str, dict]:
    """Latency figures of ``GET api/status`` per route, after a warm-up."""
    in_turns(routes, WARM_UP, request_seconds)
    return {name: latency_figures(seconds) for name, seconds in in_turns(routes, count, request_seconds).items()}


def measure_downloads(routes: list[Route], count: int, size: int, web_pids: dict[str, list[int]]) -> dict:
    """MB/s per route, and each web server's peak RSS growth in MB over the downloads."""
    before = {pid: reset_peak_rss(pid) for pids in web_pids.values() for pid in pids}
    rates = in_turns(routes, count, download_rate(size))
    growth = {pid: peak_rss(pid) - rss for pid, rss in before.items()}
    return {
        "rates": {
            name: {"median_mb_s": round(statistics.median(values), 1), "best_mb_s": round(max(values), 1)}
            for name, values in rates.items()
        },
        "rss_growth_mb": {
            server: round(max(growth[pid] for pid in pids) / MB, 1) for server, pids in web_pids.items()
        },
    }


def measure_test_site(folder: Path, count: int, downloads: int, size_mb: int) -> dict:
    """Direct, waitress and uWSGI side by side on one notebook."""
    with ExitStack() as stack:
        uwsgi_site = stack.enter_context(running_test_site_under_uwsgi(folder / "uwsgi", **SITE_PORTS))
        waitress_base, waitress_pid = stack.enter_context(running_site(uwsgi_site.notebook_folder, **SITE_PORTS))
        launch(waitress_base, USER)
        manager = NotebookManager(uwsgi_site.notebook_folder)
        context = manager.get_context(USER)
        wait_until_quiet(manager, USER)
        size = size_mb * MB
        (manager.work_folder(USER).notebook_root / "download.bin").write_bytes(os.urandom(size))
        routes = [
            direct_route(context),
            Route(WAITRESS, waitress_base, new_session(as_user(USER))),
            Route(UWSGI, uwsgi_site.base, new_session(as_user(USER))),
        ]
        small = measure_small_requests(routes, count)
        web_pids = {WAITRESS: [waitress_pid], UWSGI: [worker.pid for worker in uwsgi_site.workers()]}
        download = measure_downloads(routes, downloads, size, web_pids)
        for route in routes:
            route.session.close()
    direct_rate = download["rates"][DIRECT]["median_mb_s"]
    return {
        "small_request": small,
        "added": added_latency(small, DIRECT),
        "download": {
            "size_mb": size_mb,
            "downloads_per_path": downloads,
            **download,
            "ratio_to_direct": {
                name: round(rates["median_mb_s"] / direct_rate, 3)
                for name, rates in download["rates"].items()
                if name != DIRECT
            },
        },
    }


def measure_demo(folder: Path, count: int) -> dict:
    """The demo's proxy route under pserve against its notebook direct."""
    with running_pserve(folder / "demo", DEMO_PORTS) as site:
        with log_in_session(site.base, DEMO_USER) as session:
            launch_shell(session, site.base)
            manager = NotebookManager(site.notebook_folder)
            context = manager.get_context(DEMO_USER)
            wait_until_quiet(manager, DEMO_USER)
            routes = [direct_route(context), Route(DEMO, site.base, session)]
            small = measure_small_requests(routes, count)
            routes[0].session.close()
    return {"small_request": small, "added": added_latency(small, DIRECT)}


def print_latencies(title: str, small: dict, added: dict) -> None:
    print(title)
    print("  {:<16}{:>10}{:>10}{:>14}{:>12}".format("path", "median", "p99", "added median", "added p99"))
    for name, figures in small.items():
        extra = added.get(name)
        print(
            "  {:<16}{:>10.2f}{:>10.2f}{:>14}{:>12}".format(
                name,
                figures["median_ms"],
                figures["p99_ms"],
                "{:+.2f}".format(extra["median_ms"]) if extra else "",
                "{:+.2f}".format(extra["p99_ms"]) if extra else "",
            )
        )


def report(figures: dict) -> None:
    site, demo = figures["site"], figures["demo"]
    count = site["small_request"][DIRECT]["requests"]
    title = "GET api/status, {} requests per path, in turns (ms):".format(count)
    print_latencies(title, site["small_request"], site["added"])
    print_latencies("The demo's route, logged in (ms):", demo["small_request"], demo["added"])
    download = site["download"]
    print(
        "{} MB download, {} per path, in turns (MB/s):".format(download["size_mb"], download["downloads_per_path"])
    )
    print("  {:<16}{:>10}{:>10}{:>12}{:>16}".format("path", "median", "best", "x direct", "peak RSS growth"))
    for name, rates in download["rates"].items():
        ratio = download["ratio_to_direct"].get(name)
        growth = download["rss_growth_mb"].get(name)
        print(
            "  {:<16}{:>10.0f}{:>10.0f}{:>12}{:>16}".format(
                name,
                rates["median_mb_s"],
                rates["best_mb_s"],
                "{:.2f}x".format(ratio) if ratio else "",
                "{:+.1f} MB".format(growth) if growth is not None else "",
            )
        )


def chart(figures: dict, machine: dict) -> str:
    site, demo = figures["site"], figures["demo"]
    figure, (small_axes, demo_axes, download_axes) = new_figure("The HTTP proxy against direct requests", 3)
    for axes, small, title in (
        (small_axes, site["small_request"], "GET api/status, test site"),
        (demo_axes, demo["small_request"], "GET api/status, the demo's route"),
    ):
        names = list(small)
        median_p99_bars(
            axes,
            names,
            [small[name]["median_ms"] for name in names],
            [small[name]["p99_ms"] for name in names],
            "ms",
            title,
        )
    rates = site["download"]["rates"]
    value_bars(
        download_axes,
        list(rates),
        [figures["median_mb_s"] for figures in rates.values()],
        "MB/s (median)",
        "{} MB download".format(site["download"]["size_mb"]),
    )
    return save_chart(figure, NAME, machine)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=REQUESTS, help="small requests per path")
    parser.add_argument("--downloads", type=int, default=DOWNLOADS, help="downloads per path")
    parser.add_argument("--size-mb", type=int, default=DOWNLOAD_MB, help="size of the downloaded file")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    record = BenchmarkRecord(NAME)
    with tempfile.TemporaryDirectory(prefix="pn-bench-proxy-") as folder:
        figures = {
            "site": measure_test_site(Path(folder), arguments.requests, arguments.downloads, arguments.size_mb),
            "demo": measure_demo(Path(folder), arguments.requests),
        }
    report(figures)
    record.save(figures)
    chart(figures, record.machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())

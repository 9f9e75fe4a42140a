"""One user's abuse against everybody else's pages, under pserve (waitress) and under uWSGI.

Each server runs the demo with its shipped configuration: development.ini
(waitress, 8 threads) and uwsgi.ini (2 processes x 64 threads).  User B
loads the home page and their own notebook's ``api/status`` in a loop; the
figures are B's latencies, side by side:

- quiet: A does nothing;
- A's abuse: A opens eight downloads and reads none of them, then their
  notebook freezes (SIGSTOP) while four of A's clients keep calling its API;
- the same abuse with the protection off (a cap above any thread count and
  the old 300 s upstream timeout), to show what it buys.

The upstream timeout is 5 s here instead of the default 30, to keep the run
short; each abuse phase lasts long enough for it to expire.  Results go to
``benchmarks/results/starvation.json`` and ``.png``.
"""
import statistics
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from benchmarks.charts import median_p99_bars, new_figure, save_chart
from benchmarks.results import BenchmarkRecord
from pyramid_notebook.settings import PREFIX
from tests.support.abuse import USER_A, USER_B, frozen, notebook_pid, stalled_downloads, write_download
from tests.support.demo import launch_shell
from tests.support.login import log_in_session
from tests.support.pserve_site import running_pserve
from tests.support.stats import percentile
from tests.support.uwsgi_site import running_uwsgi

NAME = "starvation"

#: Notebook ports for this benchmark, apart from the tests' ranges.
MIN_PORT = 23400
PORT_RANGE = 100

UPSTREAM_TIMEOUT = 5
#: How long each phase loads B's pages: past the upstream timeout.
PHASE_SECONDS = 15
#: B's page loads before the first phase, not counted: templates, connections, a notebook just started.
WARM_UP_SECONDS = 3
#: A request of B's that takes longer is given up and counted as failed.
B_TIMEOUT = 10
STALLED_DOWNLOADS = 8
A_CLIENTS = 4
#: Pause between one of A's clients' requests: an impatient user, not a flood.
A_PAUSE = 0.2

PROTECTED = {PREFIX + "upstream_timeout": UPSTREAM_TIMEOUT}
UNPROTECTED = {PREFIX + "upstream_timeout": 300, PREFIX + "max_user_requests": 10000}


@dataclass
class Timings:
    """Latencies in seconds, and how many requests failed or timed out."""

    seconds: list = field(default_factory=list)
    failed: int = 0

    def add(self, session: requests.Session, url: str, timeout: float) -> None:
        started = time.perf_counter()
        try:
            ok = session.get(url, timeout=timeout).status_code == 200
        except requests.RequestException:
            ok = False
        self.seconds.append(time.perf_counter() - started)
        self.failed += not ok

    def figures(self) -> dict:
        """Request count, median, p99 and slowest in milliseconds, and failures."""
        seconds = self.seconds
        return {
            "requests": len(seconds),
            "median_ms": round(statistics.median(seconds) * 1000, 1),
            "p99_ms": round(percentile(seconds, 99) * 1000, 1),
            "max_ms": round(max(seconds) * 1000, 1),
            "failed": self.failed,
        }

    def summary(self) -> str:
        seconds = self.seconds
        return "{:5d} req  median {:8.1f} ms  p99 {:8.1f} ms  max {:8.1f} ms  failed {:3d}".format(
            len(seconds),
            statistics.median(seconds) * 1000,
            percentile(seconds, 99) * 1000,
            max(seconds) * 1000,
            self.failed,
        )


def load_b(base: str, user_b: requests.Session, seconds: float) -> Timings:
    """B's home page and own api/status, in turn, for ``seconds``."""
    timings = Timings()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for path in ("/", "/notebook/api/status"):
            timings.add(user_b, base + path, B_TIMEOUT)
    return timings


def abuse(base: str, notebook_folder: Path, user_a: requests.Session, user_b: requests.Session, download: str):
    """B's timings while A stalls downloads and freezes their notebook; also what A's API calls got."""
    outcomes = Counter()
    a_seconds = []
    stop = threading.Event()

    def a_client():
        while not stop.is_set():
            started = time.perf_counter()
            try:
                outcomes[user_a.get(base + "/notebook/api/status", timeout=PHASE_SECONDS + 30).status_code] += 1
            except requests.RequestException as error:
                outcomes[type(error).__name__] += 1
            a_seconds.append(time.perf_counter() - started)
            stop.wait(A_PAUSE)

    with ExitStack() as cleanup:
        downloads = stalled_downloads(user_a, base + download, STALLED_DOWNLOADS)
        cleanup.callback(lambda: [response.close() for response in downloads])
        outcomes.update("download {}".format(response.status_code) for response in downloads)
        cleanup.enter_context(frozen(notebook_pid(notebook_folder, USER_A)))
        clients = [threading.Thread(target=a_client) for _ in range(A_CLIENTS)]
        for client in clients:
            client.start()
        timings = load_b(base, user_b, PHASE_SECONDS)
        stop.set()
    for client in clients:
        client.join(60)
    return timings, outcomes, max(a_seconds, default=0.0)


PORTS = {PREFIX + "min_port": MIN_PORT, PREFIX + "port_range": PORT_RANGE}


@contextmanager
def pserve_demo(folder: Path, settings: dict):
    """The demo under pserve with the shipped development.ini; yields (base URL, notebook folder)."""
    with running_pserve(folder, {**settings, **PORTS}) as site:
        yield site.base, site.notebook_folder


@contextmanager
def uwsgi_demo(folder: Path, settings: dict):
    """The demo under uWSGI with the shipped uwsgi.ini; yields (base URL, notebook folder)."""
    with running_uwsgi(folder, settings={**settings, **PORTS}) as site:
        yield site.base, site.notebook_folder


def scenario(name: str, demo, folder: Path, protected: bool) -> list[tuple[str, Timings, str]]:
    """A quiet phase (when protected), then A's abuse, against one server; rows for the table."""
    rows = []
    with demo(folder, PROTECTED if protected else UNPROTECTED) as (base, notebook_folder):
        with log_in_session(base, USER_A) as user_a, log_in_session(base, USER_B) as user_b:
            for session in (user_a, user_b):
                launch_shell(session, base)
            download = write_download(notebook_folder, USER_A)
            load_b(base, user_b, WARM_UP_SECONDS)
            if protected:
                rows.append(("{}, quiet".format(name), load_b(base, user_b, PHASE_SECONDS), ""))
            timings, outcomes, a_longest = abuse(base, notebook_folder, user_a, user_b, download)
    got = ", ".join("{} x{}".format(key, count) for key, count in sorted(outcomes.items(), key=str))
    label = "{}, A's abuse{}".format(name, "" if protected else ", protection off")
    rows.append((label, timings, "A got {}; A's longest API call {:.1f} s".format(got, a_longest)))
    return rows


def chart(phases: list[dict], machine: dict) -> str:
    figure, (axes,) = new_figure("User B's pages while user A abuses their notebook", 1, 10.0)
    median_p99_bars(
        axes,
        [phase["phase"].replace(", ", "\n", 1) for phase in phases],
        [phase["median_ms"] for phase in phases],
        [phase["p99_ms"] for phase in phases],
        "ms (log scale)",
        "home page and own api/status, {} s per phase".format(PHASE_SECONDS),
        "{:.0f}",
        log_scale=True,
    )
    return save_chart(figure, NAME, machine)


def main() -> None:
    record = BenchmarkRecord(NAME)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pn-starvation-") as folder:
        for name, demo in (("pserve", pserve_demo), ("uWSGI", uwsgi_demo)):
            for protected in (True, False):
                phase_folder = Path(folder) / "{}-{}".format(name, "on" if protected else "off")
                rows += scenario(name, demo, phase_folder, protected)
    heading = "User B's pages (home and own api/status) for {} s per phase; upstream_timeout {} s:"
    print(heading.format(PHASE_SECONDS, UPSTREAM_TIMEOUT))
    for label, timings, a_report in rows:
        print("  {:<40} {}".format(label, timings.summary()))
        if a_report:
            print("  {:<40} {}".format("", a_report))
    phases = [{"phase": label, **timings.figures(), "user_a": a_report} for label, timings, a_report in rows]
    record.save({"phase_seconds": PHASE_SECONDS, "upstream_timeout_s": UPSTREAM_TIMEOUT, "phases": phases})
    chart(phases, record.machine)


if __name__ == "__main__":
    main()

"""In a real browser: from clicking "Shell 2" on the demo's home page to a cell's output, beside a bare notebook.

Site: the demo (``pyramid_notebook.demo``) from a temporary INI under waitress
in this process, as the browser tests run it, and headless Chromium driven by
splinter.  Each run starts with no notebook running: log in as ``user``,
click ``#shell2`` on the home page, wait for the notebook page, then for its
kernel to be connected and idle, run ``print("Output of a + b is", a + b)``
and stop the clock when the output shows.

Baseline, measured in the same run: the same notebook server flow without the
site.  ``NotebookManager.start_notebook`` starts a notebook whose startup
only sets ``a`` and ``b`` (blocking until it answers); the browser then opens
the notebook straight on its port with the token, and is timed from opening
to the same output.  The start is timed too, so that "start + open" can be
set beside the click, which includes the start.  Note that the demo's kernels
also load the site from its INI file at start (``make_startup``), which the
baseline's kernels do not.

The two flows take turns, each in its own browser, kept across runs: the
first run of each has a cold browser cache.  Median of five each; every run
is listed with its phases, in seconds since the click (or the opening).
"""

import statistics
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from pyramid.paster import get_app
from splinter import Browser
from webtest.http import StopableWSGIServer

from pyramid_notebook.notebookmanager import NotebookManager
from tests.chromium import new_browser
from tests.demo_fixtures import notebook_folder_of, stop_all_notebooks, write_demo_ini
from tests.test_browser import (
    PAGE_SECONDS,
    DemoSite,
    log_in,
    run_cell,
    wait_for_kernel,
    wait_for_notebook_page,
)

RUNS = 5
CODE = 'print("Output of a + b is", a + b)'
EXPECTED = "Output of a + b is foobar"
BASELINE_STARTUP = 'a = "foo"\nb = "bar"'
USER = "user"
BASELINE_USER = "baseline"
#: Port ranges of their own, away from the tests' (which start at 40000), so
#: that every run of a flow gets the same port and the browser's cache holds.
SITE_MIN_PORT = 45000
BASELINE_MIN_PORT = 45500
PORT_RANGE = 100


@dataclass
class Run:
    """Seconds since the clock started until each phase was reached."""

    page: float
    kernel: float
    output: float
    start: float = 0.0

    def after(self, offset: float) -> "Run":
        return Run(page=offset + self.page, kernel=offset + self.kernel, output=offset + self.output, start=offset)


def open_chromium(stack: ExitStack) -> Browser:
    browser = new_browser()
    stack.callback(browser.quit)
    return browser


@contextmanager
def running_demo(folder: Path):
    """The demo under waitress on a free localhost port, as the browser tests' ``site`` fixture runs it."""
    ini = write_demo_ini(
        folder, **{"pyramid_notebook.min_port": SITE_MIN_PORT, "pyramid_notebook.port_range": PORT_RANGE}
    )
    app = get_app(str(ini))
    server = StopableWSGIServer.create(app, threads=8)
    try:
        if not server.wait():
            raise RuntimeError("the demo server did not start")
        yield DemoSite(url=server.application_url.rstrip("/"), app=app, ini=ini)
    finally:
        server.shutdown()
        left = stop_all_notebooks(notebook_folder_of(ini))
        if left:
            print("WARNING: notebooks still running: {}".format(left))


def follow(browser, site, username: str, started: float) -> Run:
    """Time the notebook page, the connected kernel and the cell's output, from ``started``."""
    wait_for_notebook_page(browser)
    page = time.perf_counter() - started
    wait_for_kernel(browser, site, username)
    kernel = time.perf_counter() - started
    run_cell(browser, CODE, EXPECTED)
    return Run(page=page, kernel=kernel, output=time.perf_counter() - started)


def time_site(browser, site: DemoSite) -> Run:
    left = stop_all_notebooks(notebook_folder_of(site.ini))
    if left or site.manager.get_pid(USER) is not None:
        raise RuntimeError("a notebook still runs before the click: {}".format(left))
    log_in(browser, site, USER)
    browser.visit(site("/"))
    if not browser.is_element_present_by_id("shell2", wait_time=PAGE_SECONDS):
        raise RuntimeError("no Shell 2 link on the home page")
    started = time.perf_counter()
    browser.find_by_id("shell2").click()
    return follow(browser, site, USER, started)


def time_baseline(browser, manager: NotebookManager) -> Run:
    """Start the notebook (blocking), then time opening it straight on its port; the start is kept apart."""
    if manager.get_pid(BASELINE_USER) is not None:
        raise RuntimeError("the baseline notebook still runs")
    try:
        started = time.perf_counter()
        context = manager.start_notebook(BASELINE_USER, {"startup": BASELINE_STARTUP})
        start = time.perf_counter() - started
        url = "http://127.0.0.1:{}{}notebooks/{}?token={}".format(
            context["http_port"], context.get("notebook_path", "/notebook/"), context["notebook_name"], context["token"]
        )
        opened = time.perf_counter()
        browser.visit(url)
        run = follow(browser, SimpleNamespace(manager=manager), BASELINE_USER, opened)
        run.start = start
        return run
    finally:
        manager.stop_notebook(BASELINE_USER)


def format_run(run: Run) -> str:
    return "{:.2f} ({:.2f}, {:.2f})".format(run.output, run.page, run.kernel)


def report(rows: list[tuple[str, list[Run]]]) -> None:
    print(
        'Shell 2 to "{}" in headless Chromium, median of {} (seconds since the clock started):'.format(EXPECTED, RUNS)
    )
    print("  {:<38} {:>7} {:>7} {:>7} {:>7}".format("", "started", "page", "kernel", "output"))
    for label, runs in rows:
        start = statistics.median(run.start for run in runs)
        print(
            "  {:<38} {:>7} {:>7.2f} {:>7.2f} {:>7.2f}".format(
                label,
                "{:.2f}".format(start) if start else "-",
                statistics.median(run.page for run in runs),
                statistics.median(run.kernel for run in runs),
                statistics.median(run.output for run in runs),
            )
        )
    print("Runs, in order (output; page, kernel):")
    for label, runs in rows:
        print("  {:<38} {}".format(label, "  ".join(map(format_run, runs))))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pn-bench-browser-") as folder, ExitStack() as stack:
        folder = Path(folder)
        (folder / "site").mkdir()
        site = stack.enter_context(running_demo(folder / "site"))
        manager = NotebookManager(
            folder / "baseline", min_port=BASELINE_MIN_PORT, port_range=PORT_RANGE, kill_timeout=600
        )
        stack.callback(manager.stop_notebook, BASELINE_USER)
        site_browser, baseline_browser = open_chromium(stack), open_chromium(stack)
        through_site, bare = [], []
        for _ in range(RUNS):
            through_site.append(time_site(site_browser, site))
            bare.append(time_baseline(baseline_browser, manager))
        report(
            [
                ("site: click #shell2", through_site),
                ("bare notebook: open page", [Run(run.page, run.kernel, run.output) for run in bare]),
                ("bare notebook: start + open page", [run.after(run.start) for run in bare]),
            ]
        )


if __name__ == "__main__":
    main()

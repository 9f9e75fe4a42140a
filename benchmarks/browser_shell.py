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
first run of each has a cold browser cache.  Every wait asks the browser at
an interval (``pyramid_notebook.waiting.POLL_INTERVAL``), never in a busy
loop as splinter's ``is_element_present`` does: on two cores that loop took
over a second of CPU from the page being timed, more in the flow that
waits longer, and put the click at 1.34x instead of 1.2x.  Median of seven each; every run
is listed with its phases, in seconds since the click (or the opening).
For the click, "started" is when the manager first counted the notebook as
running (its landing kernel ready), as ``start_notebook`` returns for the
baseline: it splits the notebook's start from the browser's work.

The target compares the click with "start + open": both include starting
the notebook, and the click is what a user of the site waits for in place of
starting and opening a bare notebook.  Results go to
``benchmarks/results/browser_shell.json`` and ``.png``.

    .venv/bin/python -m benchmarks.browser_shell [--runs 7]
"""

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from splinter import Browser

from benchmarks.charts import new_figure, save_chart
from benchmarks.results import BenchmarkRecord
from pyramid_notebook.manager import RUNNING, NotebookManager
from pyramid_notebook.protocol.context import NotebookContext
from pyramid_notebook.waiting import wait_for
from tests.support.chromium import PAGE_SECONDS, new_browser, run_cell, wait_for_kernel, wait_for_notebook_page
from tests.support.demo import DemoSite, running_demo
from tests.support.login import log_in_browser
from tests.support.notebooks import stop_all

NAME = "browser_shell"
RUNS = 7
CODE = 'print("Output of a + b is", a + b)'
EXPECTED = "Output of a + b is foobar"
BASELINE_STARTUP = 'a = "foo"\nb = "bar"'
USER = "user"
BASELINE_USER = "baseline"
#: Port ranges of their own, away from the tests' (which start at 40000), so
#: that every run of a flow gets the same port and the browser's cache holds.
SITE_MIN_PORT = 26200
BASELINE_MIN_PORT = 26300
PORT_RANGE = 100
CLICK = "site: click #shell2"
BARE_OPEN = "bare notebook: open page"
BARE_START_AND_OPEN = "bare notebook: start + open page"
#: How often the site flow checks whether the notebook runs yet.
RUNNING_POLL = 0.05


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


def follow(browser, manager: NotebookManager, username: str, started: float) -> Run:
    """Time the notebook page, the connected kernel and the cell's output, from ``started``."""
    wait_for_notebook_page(browser)
    page = time.perf_counter() - started
    wait_for_kernel(browser, manager, username)
    kernel = time.perf_counter() - started
    run_cell(browser, CODE, EXPECTED)
    return Run(page=page, kernel=kernel, output=time.perf_counter() - started)


def time_site(browser, site: DemoSite) -> Run:
    left = stop_all(site.notebook_folder)
    if left or site.manager.get_pid(USER) is not None:
        raise RuntimeError("a notebook still runs before the click: {}".format(left))
    browser.visit(site("/"))
    if not browser.is_element_present_by_id("shell2", wait_time=PAGE_SECONDS):
        raise RuntimeError("no Shell 2 link on the home page")
    with ThreadPoolExecutor(1) as watcher:
        started = time.perf_counter()
        browser.find_by_id("shell2").click()
        running = watcher.submit(seconds_until_running, site.manager, USER, started)
        run = follow(browser, site.manager, USER, started)
        run.start = running.result()
    return run


def seconds_until_running(manager: NotebookManager, username: str, started: float) -> float:
    """Seconds from ``started`` until the manager counts the notebook as running, as ``start_notebook`` returns.

    Splits the click's time into the start (server and kernel, the site's
    startup script included) and what the browser does after it.
    """
    if not wait_for(lambda: manager.get_state(username)[0] == RUNNING, PAGE_SECONDS, interval=RUNNING_POLL):
        raise RuntimeError("{}'s notebook did not run within {} s of the click".format(username, PAGE_SECONDS))
    return time.perf_counter() - started


def time_baseline(browser, manager: NotebookManager) -> Run:
    """Start the notebook (blocking), then time opening it straight on its port; the start is kept apart."""
    if manager.get_pid(BASELINE_USER) is not None:
        raise RuntimeError("the baseline notebook still runs")
    try:
        started = time.perf_counter()
        context = manager.start_notebook(BASELINE_USER, NotebookContext(startup=BASELINE_STARTUP))
        start = time.perf_counter() - started
        url = "http://127.0.0.1:{}{}notebooks/{}?token={}".format(
            context.http_port, context.notebook_path, context.notebook_name, context.token
        )
        opened = time.perf_counter()
        browser.visit(url)
        run = follow(browser, manager, BASELINE_USER, opened)
        run.start = start
        return run
    finally:
        manager.stop_notebook(BASELINE_USER)


def format_run(run: Run) -> str:
    return "{:.2f} ({:.2f}, {:.2f})".format(run.output, run.page, run.kernel)


def medians(runs: list[Run]) -> dict:
    """Each phase's median over ``runs``, in seconds."""
    return {
        phase: round(statistics.median(getattr(run, phase) for run in runs), 3)
        for phase in ("start", "page", "kernel", "output")
    }


def report(rows: list[tuple[str, list[Run]]]) -> None:
    print(
        'Shell 2 to "{}" in headless Chromium, median of {} (seconds since the clock started):'.format(
            EXPECTED, len(rows[0][1])
        )
    )
    print("  {:<38} {:>7} {:>7} {:>7} {:>7}".format("", "started", "page", "kernel", "output"))
    for label, runs in rows:
        phases = medians(runs)
        print(
            "  {:<38} {:>7} {:>7.2f} {:>7.2f} {:>7.2f}".format(
                label,
                "{:.2f}".format(phases["start"]) if phases["start"] else "-",
                phases["page"],
                phases["kernel"],
                phases["output"],
            )
        )
    print("Runs, in order (output; page, kernel):")
    for label, runs in rows:
        print("  {:<38} {}".format(label, "  ".join(map(format_run, runs))))


def chart(rows: list[tuple[str, list[Run]]], machine: dict) -> str:
    """The flows as horizontal bars of their phases' medians: started, page, kernel, output."""
    figure, (axes,) = new_figure('From the click (or the start) to "{}"'.format(EXPECTED), 1, 9.0)
    colours = {"start": "#999999", "page": "#4878a8", "kernel": "#5a9e6f", "output": "#e0904a"}
    legends = {
        "start": "until the notebook runs (kernel ready)",
        "page": "until the notebook page shows",
        "kernel": "until its kernel is connected",
        "output": "until the output shows",
    }
    labels = [label for label, _runs in rows]
    labelled = set()
    for row, (_label, runs) in enumerate(rows):
        phases = medians(runs)
        previous = 0.0
        for phase in ("start", "page", "kernel", "output"):
            if phases[phase] <= previous:
                continue
            label = None if phase in labelled else legends[phase]
            labelled.add(phase)
            axes.barh(row, phases[phase] - previous, left=previous, color=colours[phase], label=label)
            previous = phases[phase]
        axes.annotate(
            "{:.2f} s".format(previous), (previous, row), xytext=(4, 0), textcoords="offset points", va="center"
        )
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the click (or the start), medians")
    handles, names = axes.get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda index: list(legends.values()).index(names[index]))
    axes.legend(
        [handles[index] for index in order],
        [names[index] for index in order],
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=2,
    )
    axes.grid(axis="x", alpha=0.3)
    axes.margins(x=0.12)
    return save_chart(figure, NAME, machine)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="runs of each flow")
    arguments = parser.parse_args(argv)
    record = BenchmarkRecord(NAME)
    with tempfile.TemporaryDirectory(prefix="pn-bench-browser-") as folder, ExitStack() as stack:
        folder = Path(folder)
        (folder / "site").mkdir()
        site = stack.enter_context(
            running_demo(
                folder / "site",
                **{"pyramid_notebook.min_port": SITE_MIN_PORT, "pyramid_notebook.port_range": PORT_RANGE},
            )
        )
        manager = NotebookManager(
            folder / "baseline", min_port=BASELINE_MIN_PORT, port_range=PORT_RANGE, kill_timeout=600
        )
        stack.callback(manager.stop_notebook, BASELINE_USER)
        site_browser, baseline_browser = open_chromium(stack), open_chromium(stack)
        # Once: logging in again on a logged-in browser's login page races
        # with the page's own "current user" (stopping notebooks keeps the login).
        log_in_browser(site_browser, site.url, USER)
        through_site, bare = [], []
        for _ in range(arguments.runs):
            through_site.append(time_site(site_browser, site))
            bare.append(time_baseline(baseline_browser, manager))
    rows = [
        (CLICK, through_site),
        (BARE_OPEN, [Run(run.page, run.kernel, run.output) for run in bare]),
        (BARE_START_AND_OPEN, [run.after(run.start) for run in bare]),
    ]
    report(rows)
    flows = {
        label: {"medians_s": medians(runs), "runs": [dataclasses.asdict(run) for run in runs]} for label, runs in rows
    }
    click, bare_open, bare_start_and_open = (flows[label]["medians_s"]["output"] for label, _runs in rows)
    record.save(
        {
            "runs_per_flow": arguments.runs,
            "flows": flows,
            "click_to_output_s": click,
            "bare_open_s": bare_open,
            "bare_start_and_open_s": bare_start_and_open,
            "ratio_to_bare_start_and_open": round(click / bare_start_and_open, 3),
            "ratio_to_bare_open": round(click / bare_open, 3),
        }
    )
    chart(rows, record.machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())

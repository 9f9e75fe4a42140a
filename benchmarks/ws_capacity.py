"""How fast the site's home page answers while notebook tabs hold websockets, per uWSGI concurrency setting.

    .venv/bin/python benchmarks/ws_capacity.py [--tabs 20]

Each notebook tab holds two websockets (``api/events/subscribe`` and the
kernel's channels), and under uWSGI each open websocket holds a worker
thread.  For each setting below, the demo runs under the shipped uwsgi.ini
with only ``processes`` and ``threads`` changed; ``--tabs`` tabs' websockets
are opened, then the logged-in home page is fetched 20 times.  Prints how
many websockets opened, and the home page's median and slowest time (a page
that does not come within 5 s counts as starved).  Results go to
``benchmarks/results/ws_capacity.json`` and ``.png``.
"""
import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.charts import median_p99_bars, new_figure, save_chart  # noqa: E402
from benchmarks.results import BenchmarkRecord  # noqa: E402
from tests.support.login import cookie_header, log_in_session  # noqa: E402
from tests.support.uwsgi_site import running_uwsgi, start_notebook  # noqa: E402
from tests.support.ws_client import V1_PROTOCOL, channels_path, delete_kernel, open_websocket, start_kernel  # noqa: E402

logger = logging.getLogger("ws_capacity")

NAME = "ws_capacity"

#: (processes, threads) to compare; the last is what uwsgi.ini ships.
SETTINGS = [(1, 8), (2, 16), (2, 32), (2, 64)]
PAGE_TIMEOUT = 5.0
SOCKET_TIMEOUT = 5.0
PAGES = 20


def drain(ws) -> None:
    """Read (and so answer pings) until the websocket closes."""
    ws.settimeout(None)
    try:
        while True:
            ws.recv()
    except (OSError, websocket.WebSocketException):
        pass


def measure(folder: Path, uwsgi_args: list[str], tabs: int) -> tuple[int, list[float | None]]:
    """Websockets opened and home page timings (ms, None when starved) under uWSGI with ``uwsgi_args`` added."""
    with running_uwsgi(folder, extra_args=uwsgi_args) as site:
        context = start_notebook(site, "user")
        session = log_in_session(site.base, "user")
        kernel_id = start_kernel(context)
        sockets = []
        try:
            base = site.base.replace("http://", "ws://", 1)
            headers = {"Cookie": cookie_header(session)}
            wanted = [("/notebook/api/events/subscribe", None), (channels_path(kernel_id), [V1_PROTOCOL])] * tabs

            def open_one(path_and_protocols):
                path, protocols = path_and_protocols
                try:
                    return open_websocket(base + path, headers, protocols, timeout=SOCKET_TIMEOUT)
                except (OSError, websocket.WebSocketException):
                    return None

            # All at once, as tabs would: a websocket that gets no thread waits
            # in uWSGI's listen queue until its handshake times out.
            with ThreadPoolExecutor(len(wanted)) as pool:
                sockets = [ws for ws in pool.map(open_one, wanted) if ws is not None]
            for ws in sockets:
                # Like a browser, answer the proxy's keep-alive pings.
                threading.Thread(target=drain, args=(ws,), daemon=True).start()
            timings = []
            for _ in range(PAGES):
                started = time.perf_counter()
                try:
                    session.get(site.base + "/", timeout=PAGE_TIMEOUT).raise_for_status()
                    timings.append((time.perf_counter() - started) * 1000)
                except requests.RequestException:
                    timings.append(None)
            return len(sockets), timings
        finally:
            for ws in sockets:
                # Not close(): its reply would race with the drain thread.
                ws.shutdown()
            delete_kernel(context, kernel_id)


def chart(settings: list[dict], tabs: int, machine: dict) -> str:
    """Median and slowest home page per setting; a starved page counts as the timeout."""
    timeout_ms = PAGE_TIMEOUT * 1000
    figure, (axes,) = new_figure("Home page with {} notebook tabs open, per uWSGI setting".format(tabs), 1, 7.0)
    median_p99_bars(
        axes,
        ["{processes} x {threads}\n{websockets_opened} ws open".format(**setting) for setting in settings],
        [setting["median_ms"] or timeout_ms for setting in settings],
        [setting["slowest_ms"] or timeout_ms for setting in settings],
        "ms (log scale)",
        "processes x threads; starved pages count as {:.0f} ms".format(timeout_ms),
        "{:.0f}",
        log_scale=True,
        second_label="slowest",
    )
    return save_chart(figure, NAME, machine)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tabs", type=int, default=20, help="notebook tabs, two websockets each (default 20)")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    record = BenchmarkRecord(NAME)
    print("Home page with {} tabs ({} websockets) open:".format(arguments.tabs, 2 * arguments.tabs))
    print("{:<22}{:>12}{:>12}{:>12}".format("processes x threads", "websockets", "median ms", "slowest ms"))
    settings = []
    with tempfile.TemporaryDirectory(prefix="ws-capacity-") as folder:
        for number, (processes, threads) in enumerate(SETTINGS):
            uwsgi_args = ["--processes", str(processes), "--threads", str(threads)]
            opened, timings = measure(Path(folder) / str(number), uwsgi_args, arguments.tabs)
            answered = [value for value in timings if value is not None]
            starved = len(timings) - len(answered)
            median = "{:.1f}".format(statistics.median(answered)) if answered else "-"
            slowest = "starved x{}".format(starved) if starved else "{:.1f}".format(max(answered))
            print("{:<22}{:>12}{:>12}{:>12}".format("{} x {}".format(processes, threads), opened, median, slowest))
            settings.append(
                {
                    "processes": processes,
                    "threads": threads,
                    "websockets_opened": opened,
                    "pages": len(timings),
                    "median_ms": round(statistics.median(answered), 1) if answered else None,
                    "slowest_ms": round(max(answered), 1) if answered and not starved else None,
                    "starved": starved,
                }
            )
    record.save({"tabs": arguments.tabs, "websockets_wanted": 2 * arguments.tabs, "settings": settings})
    chart(settings, arguments.tabs, record.machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())

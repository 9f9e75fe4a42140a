"""Kernel execute round trip: straight to the notebook, through uWSGI, and through nginx + uWSGI.

    .venv/bin/python benchmarks/ws_roundtrip.py [--requests 1000] [--protocol v1|legacy]

Starts the demo under uWSGI with the shipped uwsgi.ini (and, when nginx is
installed, the shipped nginx.conf in front of it) in a temporary folder, and a
notebook with three kernels.  Each path has a websocket to a kernel of its
own: straight to the notebook's port with its token, through uWSGI, and
through nginx; in three rounds, each path uses each kernel.  Each request
executes ``1`` and waits for the reply and the idle status.  The paths take
turns, each going first in turn, so that whatever else the machine does falls
on all of them alike.  Prints the median, p99 and mean in
milliseconds, and what each proxy adds to the direct median.  Results go to
``benchmarks/results/ws_roundtrip.json`` and ``.png``.
"""
import argparse
import logging
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.charts import median_p99_bars, new_figure, save_chart  # noqa: E402
from benchmarks.results import BenchmarkRecord  # noqa: E402
from tests.support.login import cookie_header, log_in_session  # noqa: E402
from tests.support.notebooks import token_header  # noqa: E402
from tests.support.stats import percentile  # noqa: E402
from tests.support.uwsgi_site import NGINX, running_nginx, running_uwsgi, start_notebook  # noqa: E402
from tests.support.ws_client import (  # noqa: E402
    V1_PROTOCOL,
    KernelSocket,
    channels_path,
    delete_kernel,
    open_websocket,
    start_kernel,
)

logger = logging.getLogger("ws_roundtrip")

NAME = "ws_roundtrip"
WARM_UP = 50


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="execute requests per path (default 1000)")
    parser.add_argument("--protocol", choices=["v1", "legacy"], default="v1", help="kernel websocket protocol")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    protocol = V1_PROTOCOL if arguments.protocol == "v1" else None
    record = BenchmarkRecord(NAME)

    with tempfile.TemporaryDirectory(prefix="ws-roundtrip-") as folder, ExitStack() as stack:
        site = stack.enter_context(running_uwsgi(Path(folder) / "site"))
        context = start_notebook(site, "user")
        session = log_in_session(site.base, "user")

        def ws_base(base: str) -> str:
            return base.replace("http://", "ws://", 1)

        paths = {"direct": ("ws://127.0.0.1:{}".format(context.http_port), token_header(context))}
        paths["uwsgi"] = (ws_base(site.base), {"Cookie": cookie_header(session)})
        if NGINX:
            nginx_base = stack.enter_context(running_nginx(Path(folder) / "nginx", site.port))
            nginx_session = log_in_session(nginx_base, "user")
            paths["nginx+uwsgi"] = (ws_base(nginx_base), {"Cookie": cookie_header(nginx_session)})
        else:
            logger.warning("nginx is not installed: measuring without it")

        # A kernel per path: a kernel sends its output to every websocket
        # connected to it, and no path should carry another's.  Kernels differ
        # a little in speed, so each path uses each kernel for a share of the
        # requests.
        names = list(paths)
        kernels = []
        for _ in names:
            kernels.append(start_kernel(context))
            stack.callback(delete_kernel, context, kernels[-1])
        timings = {name: [] for name in names}
        for round_number in range(len(names)):
            sockets = {}
            for number, name in enumerate(names):
                base, headers = paths[name]
                kernel_id = kernels[(number + round_number) % len(kernels)]
                # websocket-client's Origin is the address it connects to, as the site expects.
                ws = open_websocket(base + channels_path(kernel_id), headers, [protocol] if protocol else None)
                sockets[name] = KernelSocket(ws, protocol)
            try:
                for _ in range(WARM_UP):
                    for kernel_ws in sockets.values():
                        kernel_ws.execute("1")
                share = arguments.requests // len(names) + (round_number < arguments.requests % len(names))
                for number in range(share):
                    # Each path goes first in turn, so that none always follows the same one.
                    shift = number % len(names)
                    for name in names[shift:] + names[:shift]:
                        started = time.perf_counter()
                        sockets[name].execute("1")
                        timings[name].append((time.perf_counter() - started) * 1000)
            finally:
                for kernel_ws in sockets.values():
                    kernel_ws.ws.close()

    direct = statistics.median(timings["direct"])
    print(
        "Execute round trip, {} requests per path, {} protocol (ms):".format(arguments.requests, arguments.protocol)
    )
    print("{:<14}{:>9}{:>9}{:>9}{:>16}".format("path", "median", "p99", "mean", "added (median)"))
    paths_figures = {}
    for name, values in timings.items():
        median = statistics.median(values)
        paths_figures[name] = {
            "requests": len(values),
            "median_ms": round(median, 3),
            "p99_ms": round(percentile(values, 99), 3),
            "mean_ms": round(statistics.fmean(values), 3),
            "added_median_ms": None if name == "direct" else round(median - direct, 3),
        }
        print(
            "{:<14}{:>9.2f}{:>9.2f}{:>9.2f}{:>16}".format(
                name,
                median,
                percentile(values, 99),
                statistics.fmean(values),
                "" if name == "direct" else "{:+.2f}".format(median - direct),
            )
        )
    record.save({"protocol": arguments.protocol, "paths": paths_figures})
    figure, (axes,) = new_figure("Kernel execute round trip ({} protocol)".format(arguments.protocol), 1, 6.0)
    median_p99_bars(
        axes,
        list(paths_figures),
        [path["median_ms"] for path in paths_figures.values()],
        [path["p99_ms"] for path in paths_figures.values()],
        "ms",
        "{} executes per path, in turns".format(arguments.requests),
    )
    save_chart(figure, NAME, record.machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The HTTP proxy's overhead: the same requests straight to a notebook and through the site.

The site is tests/site.py under waitress in its own process.  Reported side
by side: median and p99 latency of ``GET api/status``, and throughput of a
100 MB download, plus the site process's peak memory growth.
"""
import os
import statistics
import tempfile
import time
from pathlib import Path

import requests

from pyramid_notebook.notebookmanager import NotebookManager
from pyramid_notebook.server.workspace import notebook_root
from tests.site_server import launch, peak_rss, running_site

REQUESTS = 500
DOWNLOADS = 3
MB = 1024 * 1024
DOWNLOAD = "/notebook/files/download.bin"


def latencies(session: requests.Session, url: str, headers: dict) -> list[float]:
    timings = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        session.get(url, headers=headers, timeout=10).raise_for_status()
        timings.append(time.perf_counter() - started)
    return timings


def download_rate(session: requests.Session, url: str, headers: dict) -> float:
    """Best of a few downloads, in MB/s."""
    best = 0.0
    for _ in range(DOWNLOADS):
        started, size = time.perf_counter(), 0
        with session.get(url, headers=headers, stream=True, timeout=60) as response:
            response.raise_for_status()
            for chunk in response.iter_content(MB):
                size += len(chunk)
        best = max(best, size / MB / (time.perf_counter() - started))
    return best


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="pn-bench-")) / "notebooks"
    folder.mkdir()
    with running_site(folder) as (base, pid):
        user = {"X-Test-User": "alice"}
        launch(base, "alice")
        context = NotebookManager(folder).get_context("alice")
        direct_base = "http://127.0.0.1:{}".format(context["http_port"])
        direct = {"Authorization": "token " + context["token"]}
        with open(notebook_root(folder / "alice") / "download.bin", "wb") as stream:
            stream.write(os.urandom(100 * MB))

        with requests.Session() as session:
            session.trust_env = False
            latencies(session, base + "/notebook/api/status", user)
            rows = [
                ("direct to the notebook", latencies(session, direct_base + "/notebook/api/status", direct)),
                ("through the site's proxy", latencies(session, base + "/notebook/api/status", user)),
            ]
            print("GET api/status over {} requests (ms):".format(REQUESTS))
            for label, timings in rows:
                print(
                    "  {:<28} median {:6.2f}   p99 {:6.2f}".format(
                        label, statistics.median(timings) * 1000, percentile(timings, 0.99) * 1000
                    )
                )
            before = peak_rss(pid)
            rates = [
                ("direct to the notebook", download_rate(session, direct_base + DOWNLOAD, direct)),
                ("through the site's proxy", download_rate(session, base + DOWNLOAD, user)),
            ]
            print("100 MB download, best of {} (MB/s):".format(DOWNLOADS))
            for label, rate in rates:
                print("  {:<28} {:8.0f}".format(label, rate))
            print("Site process peak RSS growth during the downloads: {:.1f} MB".format((peak_rss(pid) - before) / MB))


if __name__ == "__main__":
    main()

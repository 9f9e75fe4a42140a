"""The performance targets (issue 12) in one place, and the summary table that ``make bench`` ends with.

Each row reads a benchmark's saved result (``benchmarks/results/<name>.json``)
and sets the figure beside its target: MET or NOT MET.  Rows without a
target (the starvation benchmark's, the demo route's, ...) carry figures
only, so that one table shows where everything stands.
"""
from collections.abc import Callable
from dataclasses import dataclass

#: Small request (GET api/status): what the proxy may add to a direct request, in ms.
SMALL_REQUEST_ADDED_MEDIAN_MS = 1.5
SMALL_REQUEST_ADDED_P99_MS = 4.0
#: 100 MB download through the proxy, as a fraction of direct.
DOWNLOAD_RATIO_UWSGI = 0.8
DOWNLOAD_RATIO_WAITRESS = 0.6
#: The web process's peak RSS growth during the downloads, in MB.
DOWNLOAD_RSS_GROWTH_MB = 50.0
#: From the click on "Shell 2" to the output, as a multiple of a bare notebook's start + open.
CLICK_TO_SHELL_RATIO = 1.2

MET = "MET"
NOT_MET = "NOT MET"
NOT_MEASURED = "not measured"
FIGURE_ONLY = "-"


@dataclass
class Row:
    """One line of the summary: what, the figure, the target (if any) and whether it is met."""

    what: str
    measured: str
    target: str = ""
    status: str = FIGURE_ONLY


def judged(what: str, measured: str, target: str, met: bool) -> Row:
    return Row(what, measured, target, MET if met else NOT_MET)


def proxy_rows(figures: dict | None) -> list[Row]:
    """Small request and download against direct, under waitress and uWSGI; the demo route."""
    if figures is None:
        return [Row("Proxy (benchmarks/proxy.py)", "", "", NOT_MEASURED)]
    site = figures["site"]
    small, added, download = site["small_request"], site["added"], site["download"]
    direct = small["direct"]
    rows = []
    for server in ("waitress", "uWSGI"):
        median, p99 = added[server]["median_ms"], added[server]["p99_ms"]
        rows.append(
            judged(
                "Small request, added median, {}".format(server),
                "{:+.2f} ms ({:.2f} vs {:.2f} direct)".format(median, small[server]["median_ms"], direct["median_ms"]),
                "<= {} ms".format(SMALL_REQUEST_ADDED_MEDIAN_MS),
                median <= SMALL_REQUEST_ADDED_MEDIAN_MS,
            )
        )
        rows.append(
            judged(
                "Small request, added p99, {}".format(server),
                "{:+.2f} ms ({:.2f} vs {:.2f} direct)".format(p99, small[server]["p99_ms"], direct["p99_ms"]),
                "<= {} ms".format(SMALL_REQUEST_ADDED_P99_MS),
                p99 <= SMALL_REQUEST_ADDED_P99_MS,
            )
        )
    rates = download["rates"]
    for server, bound in (("uWSGI", DOWNLOAD_RATIO_UWSGI), ("waitress", DOWNLOAD_RATIO_WAITRESS)):
        ratio = download["ratio_to_direct"][server]
        rows.append(
            judged(
                "{} MB download, {}".format(download["size_mb"], server),
                "{:.2f}x ({:.0f} vs {:.0f} MB/s direct)".format(
                    ratio, rates[server]["median_mb_s"], rates["direct"]["median_mb_s"]
                ),
                ">= {}x direct".format(bound),
                ratio >= bound,
            )
        )
    for server in ("waitress", "uWSGI"):
        growth = download["rss_growth_mb"][server]
        rows.append(
            judged(
                "Download, web process peak RSS growth, {}".format(server),
                "{:+.1f} MB".format(growth),
                "< +{:.0f} MB".format(DOWNLOAD_RSS_GROWTH_MB),
                growth < DOWNLOAD_RSS_GROWTH_MB,
            )
        )
    demo_small, demo_added = figures["demo"]["small_request"], figures["demo"]["added"]
    route = next(iter(demo_added))
    rows.append(
        Row(
            "Demo route (pserve), added median / p99",
            "{:+.2f} / {:+.2f} ms ({:.2f} vs {:.2f} direct)".format(
                demo_added[route]["median_ms"],
                demo_added[route]["p99_ms"],
                demo_small[route]["median_ms"],
                demo_small["direct"]["median_ms"],
            ),
        )
    )
    return rows


def browser_shell_rows(figures: dict | None) -> list[Row]:
    """The click on Shell 2 to its output, against a bare notebook's start + open."""
    if figures is None:
        return [Row("Click to a loaded shell (benchmarks/browser_shell.py)", "", "", NOT_MEASURED)]
    ratio = figures["ratio_to_bare_start_and_open"]
    return [
        judged(
            "Click to a loaded shell, Chromium",
            "{:.2f}x ({:.2f} s vs {:.2f} s bare start + open)".format(
                ratio, figures["click_to_output_s"], figures["bare_start_and_open_s"]
            ),
            "<= {}x bare".format(CLICK_TO_SHELL_RATIO),
            ratio <= CLICK_TO_SHELL_RATIO,
        )
    ]


def starvation_rows(figures: dict | None) -> list[Row]:
    """User B's page times in each phase of user A's abuse."""
    if figures is None:
        return [Row("Starvation (benchmarks/starvation.py)", "", "", NOT_MEASURED)]
    return [
        Row(
            "Starvation: B's pages, {}".format(phase["phase"]),
            "median {:.0f} ms, p99 {:.0f} ms, {} of {} failed".format(
                phase["median_ms"], phase["p99_ms"], phase["failed"], phase["requests"]
            ),
        )
        for phase in figures["phases"]
    ]


def ws_roundtrip_rows(figures: dict | None) -> list[Row]:
    """The websocket relays' added round trip."""
    if figures is None:
        return [Row("Kernel round trip (benchmarks/ws_roundtrip.py)", "", "", NOT_MEASURED)]
    paths = figures["paths"]
    return [
        Row(
            "Kernel execute round trip, {}".format(name),
            "{:.2f} ms median ({:+.2f} vs {:.2f} direct)".format(
                path["median_ms"], path["added_median_ms"], paths["direct"]["median_ms"]
            ),
        )
        for name, path in paths.items()
        if name != "direct"
    ]


def cold_start_rows(figures: dict | None) -> list[Row]:
    """Our notebook start against a bare ``jupyter notebook``."""
    if figures is None:
        return [Row("Cold start (benchmarks/cold_start.py)", "", "", NOT_MEASURED)]
    ours, bare = figures["ours_median_s"], figures["bare_median_s"]
    return [Row("Cold start to api/status, median", "{:.2f} s vs {:.2f} s bare jupyter notebook".format(ours, bare))]


def ws_capacity_rows(figures: dict | None) -> list[Row]:
    """The home page under the shipped uWSGI threads with tabs open."""
    if figures is None:
        return [Row("Websocket capacity (benchmarks/ws_capacity.py)", "", "", NOT_MEASURED)]
    shipped = figures["settings"][-1]
    if shipped["starved"]:
        slowest = "starved x{}".format(shipped["starved"])
    else:
        slowest = "{:.0f} ms".format(shipped["slowest_ms"])
    return [
        Row(
            "Home page, {} tabs open, uWSGI {} x {}".format(figures["tabs"], shipped["processes"], shipped["threads"]),
            "median {:.0f} ms, slowest {}".format(shipped["median_ms"] or 0, slowest),
        )
    ]


#: Benchmark name to the rows its result gives, in the order of the table.
ROWS: dict[str, Callable[[dict | None], list[Row]]] = {
    "proxy": proxy_rows,
    "browser_shell": browser_shell_rows,
    "starvation": starvation_rows,
    "ws_roundtrip": ws_roundtrip_rows,
    "cold_start": cold_start_rows,
    "ws_capacity": ws_capacity_rows,
}


def summary_rows(load_figures: Callable[[str], dict | None]) -> list[Row]:
    """Every row of the summary, from each benchmark's figures (None when it has no result).

    A result saved by an older version of a benchmark, which lacks a figure,
    shows as not measured rather than ending the summary.
    """
    summary = []
    for name, rows in ROWS.items():
        try:
            summary += rows(load_figures(name))
        except KeyError as missing:
            summary.append(Row("{}: its result has no {}; run it again".format(name, missing), "", "", NOT_MEASURED))
    return summary


def format_table(rows: list[Row]) -> str:
    """The rows as a plain-text table."""
    headings = Row("", "measured", "target", "status")
    widths = [max(len(getattr(row, field)) for row in [headings, *rows]) for field in ("what", "measured", "target")]
    lines = []
    for row in [headings, *rows]:
        lines.append(
            "{:<{}}  {:<{}}  {:<{}}  {}".format(
                row.what, widths[0], row.measured, widths[1], row.target, widths[2], row.status
            ).rstrip()
        )
    lines.insert(1, "-" * len(max(lines, key=len)))
    return "\n".join(lines)

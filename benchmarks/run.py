"""Run every benchmark in turn, then print the summary table of figures against the targets.

    .venv/bin/python -m benchmarks.run [NAME ...] [--summary-only]

Each benchmark runs in a process of its own and measures its paths side by
side with a baseline in the same run; it writes ``benchmarks/results/<name>.json``
and ``<name>.png``.  A benchmark's old result is removed before it runs, so
that one that fails shows as "not measured" rather than with stale figures.
The summary (:mod:`benchmarks.targets`) is also saved as ``results/summary.json``.
"""
import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import results
from benchmarks.targets import NOT_MET, format_table, summary_rows

REPOSITORY = Path(__file__).resolve().parent.parent

#: In the order they run: the short, target-bearing ones first.
BENCHMARKS = ["proxy", "browser_shell", "cold_start", "ws_roundtrip", "ws_capacity", "starvation"]


def run_benchmark(name: str) -> bool:
    """Run ``benchmarks.<name>`` in its own process; True if it finished and saved its result."""
    results.forget(name)
    print("== {} == (load average {})".format(name, " ".join("{:.2f}".format(load) for load in os.getloadavg())))
    started = time.monotonic()
    finished = subprocess.run([sys.executable, "-m", "benchmarks." + name], cwd=REPOSITORY).returncode == 0
    print("== {} took {:.0f} s{}".format(name, time.monotonic() - started, "" if finished else ", and FAILED"))
    return finished and results.load(name) is not None


def figures_of(name: str) -> dict | None:
    """The figures of benchmark ``name``'s saved result, or None."""
    result = results.load(name)
    return None if result is None else result["figures"]


def machine_lines() -> list[str]:
    """Where and when each saved result was measured."""
    lines = []
    for name in BENCHMARKS:
        result = results.load(name)
        if result is None:
            continue
        machine = result["machine"]
        lines.append(
            "  {:<14} {}  {} x{} cores, load average {} at start, {} at end".format(
                name,
                result["started"],
                machine["cpu"],
                machine["cores"],
                " ".join("{:.2f}".format(load) for load in machine["load_average"]),
                " ".join("{:.2f}".format(load) for load in result["load_average_at_end"]),
            )
        )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all): " + ", ".join(BENCHMARKS))
    parser.add_argument("--summary-only", action="store_true", help="print the summary of the saved results")
    arguments = parser.parse_args(argv)
    unknown = sorted(set(arguments.names) - set(BENCHMARKS))
    if unknown:
        parser.error("no benchmark named {}; there are {}".format(", ".join(unknown), ", ".join(BENCHMARKS)))
    failed = []
    if not arguments.summary_only:
        for name in arguments.names or BENCHMARKS:
            if not run_benchmark(name):
                failed.append(name)
    rows = summary_rows(figures_of)
    print()
    print("Summary against the targets of issue 12 (benchmarks/targets.py):")
    print(format_table(rows))
    print("Measured:")
    print("\n".join(machine_lines()))
    print("Charts and JSON: {}".format(results.RESULTS))
    results.RESULTS.mkdir(parents=True, exist_ok=True)
    (results.RESULTS / "summary.json").write_text(
        json.dumps([dataclasses.asdict(row) for row in rows], indent=2) + "\n"
    )
    missed = sum(row.status == NOT_MET for row in rows)
    failures = ": " + ", ".join(failed) if failed else ""
    print("{} target(s) not met; {} benchmark(s) failed{}".format(missed, len(failed), failures))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

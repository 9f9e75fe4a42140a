"""Where each benchmark leaves its figures: ``benchmarks/results/<name>.json``, with the machine they came from.

Benchmarks on a shared 2-core machine move with whatever else runs, so every
result records the CPU, the core count and the load average when it started
and when it ended.  ``benchmarks.run`` reads these files back for its summary.
"""
import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or the platform's processor string elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    """What the figures were measured on, and how busy it was right now."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "python": platform.python_version(),
        "system": "{} {}".format(platform.system(), platform.release()),
    }


def json_path(name: str) -> Path:
    """The JSON file of benchmark ``name``."""
    return RESULTS / "{}.json".format(name)


def chart_path(name: str) -> Path:
    """The PNG chart of benchmark ``name``."""
    return RESULTS / "{}.png".format(name)


class BenchmarkRecord:
    """One benchmark's run: the machine when it started, then its figures when it ends.

    Create it before measuring, so that the load average is the one the
    measurement met, not the one it caused.
    """

    def __init__(self, name: str):
        self.name = name
        self.started = time.time()
        self.machine = machine()

    def save(self, figures: dict) -> Path:
        """Write ``figures`` with the machine and the times to ``results/<name>.json``; return its path."""
        RESULTS.mkdir(parents=True, exist_ok=True)
        document = {
            "benchmark": self.name,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "seconds": round(time.time() - self.started, 1),
            "machine": self.machine,
            "load_average_at_end": [round(load, 2) for load in os.getloadavg()],
            "figures": figures,
        }
        path = json_path(self.name)
        path.write_text(json.dumps(document, indent=2) + "\n")
        return path


def load(name: str) -> dict | None:
    """The last saved result of benchmark ``name``, or None if it has none."""
    path = json_path(name)
    if not path.exists():
        return None
    return json.loads(path.read_text())


def forget(name: str) -> None:
    """Remove benchmark ``name``'s JSON and chart, so that a failed run leaves no stale figures behind."""
    for path in (json_path(name), chart_path(name)):
        path.unlink(missing_ok=True)

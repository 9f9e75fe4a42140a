"""Server processes the tests start: a free port, waiting until one serves, stopping it, its memory."""
import configparser
import logging
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests

from pyramid_notebook.waiting import wait_for

logger = logging.getLogger(__name__)

#: Seconds a server may take to start serving, and to stop.
START_SECONDS = 60
STOP_SECONDS = 15

REPOSITORY = Path(__file__).resolve().parents[2]
DEVELOPMENT_INI = REPOSITORY / "development.ini"


def development_waitress_options() -> dict[str, int]:
    """The shipped development.ini's waitress options (threads, output buffers), for servers started in Python."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(DEVELOPMENT_INI)
    server = parser["server:main"]
    return {name: int(server[name]) for name in ("threads", "outbuf_high_watermark", "outbuf_overflow")}


def free_port() -> int:
    """A localhost port nothing listens on right now (the OS's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_rss(pid: int) -> int:
    """The process's peak resident set size so far, in bytes (VmHWM)."""
    for line in Path("/proc/{}/status".format(pid)).read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("No VmHWM for process {}".format(pid))


def reset_peak_rss(pid: int) -> int:
    """Reset the process's peak RSS to its current RSS (``clear_refs`` 5); return that, in bytes.

    So that a growth measured afterwards is not hidden under an earlier peak.
    """
    Path("/proc/{}/clear_refs".format(pid)).write_text("5")
    return peak_rss(pid)


def replace_once(text: str, old: str, new: str, where: str) -> str:
    """Replace ``old`` by ``new`` exactly once, so that a changed shipped file fails loudly here."""
    count = text.count(old)
    if count != 1:
        raise AssertionError("expected {!r} once in {}, found it {} times".format(old, where, count))
    return text.replace(old, new)


def wait_until_serving(
    process: subprocess.Popen,
    url: str,
    accept: Callable[[requests.Response], bool],
    what: str,
    log: Path | None = None,
    timeout: float = START_SECONDS,
) -> None:
    """Wait until ``url`` gives a response ``accept`` takes; fail with the server's log if it ends or never does."""

    def settled() -> bool:
        if process.poll() is not None:
            return True
        try:
            return accept(requests.get(url, timeout=5))
        except requests.RequestException:
            return False

    if not wait_for(settled, timeout) or process.poll() is not None:
        text = log.read_text(errors="replace")[-5000:] if log is not None and log.exists() else "(no log)"
        raise AssertionError("{} did not start; its log:\n{}".format(what, text))


def stop_process(process: subprocess.Popen, stop_signal: int = signal.SIGINT) -> None:
    """Stop a server we started, by its pid; kill it and its children if it does not stop in time."""
    if process.poll() is not None:
        process.wait()
        return
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    process.send_signal(stop_signal)
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        logger.warning("pid %d did not stop in %d s: killing it", process.pid, STOP_SECONDS)
        process.kill()
        process.wait()
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


@contextmanager
def serving_demo_process(command: list[str], folder: Path, base: str, what: str, make_site: Callable) -> Iterator:
    """Run ``command`` (a server of the demo) in ``folder``, its output in ``<what>.log``, and yield
    ``make_site(process, log)`` once ``base`` serves the login page.

    Stops the server and then every notebook under the site's
    ``notebook_folder``, and fails if one would not stop.
    """
    from tests.support.notebooks import stop_all

    log = folder / "{}.log".format(what.lower())
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, cwd=folder
        )
    site = make_site(process, log)
    try:
        wait_until_serving(process, base + "/login", lambda response: response.status_code == 200, what, log)
        yield site
    finally:
        try:
            stop_process(process)
        finally:
            left = stop_all(site.notebook_folder)
            assert not left, "notebooks still running for {}".format(left)

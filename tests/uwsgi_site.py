"""The demo site under a real uWSGI (and nginx), configured by the shipped uwsgi.ini and nginx.conf.

Used by ``tests/test_uwsgi.py`` and ``benchmarks/ws_roundtrip.py``.  The
shipped files are copied into a temporary folder with only what must differ
in a test changed: the addresses, the demo INI (a throw-away database and
notebook folder), and the log level.  Everything else (threads, websocket
limits, the prefix filter, nginx's proxy settings) is what ships.
"""
import logging
import re
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from pyramid_notebook.notebookmanager import NotebookManager
from pyramid_notebook.waiting import wait_for
from tests.demo_fixtures import PASSWORD, stop_all_notebooks, write_demo_ini
from tests.site_server import free_port

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parent.parent
UWSGI_INI = REPOSITORY / "uwsgi.ini"
NGINX_CONF = REPOSITORY / "nginx.conf"
UWSGI = Path(sys.executable).with_name("uwsgi")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

#: Notebook ports for these tests, apart from the other test modules' ranges.
MIN_PORT = 43000
PORT_RANGE = 100

#: Lets the tests' 20 MB outputs through: Jupyter drops output faster than
#: 1 MB/s by default (``iopub_data_rate_limit``).
BIG_OUTPUT_ARGS = ["--ServerApp.iopub_data_rate_limit=1e12"]

START_TIMEOUT = 60
STOP_TIMEOUT = 15


def replace_once(text: str, old: str, new: str, where: str) -> str:
    """Replace ``old`` by ``new`` exactly once, so that a changed shipped file fails loudly here."""
    count = text.count(old)
    if count != 1:
        raise AssertionError("expected {!r} once in {}, found it {} times".format(old, where, count))
    return text.replace(old, new)


@dataclass
class UwsgiSite:
    """A running uWSGI serving the demo."""

    base: str
    port: int
    folder: Path
    log: Path
    process: subprocess.Popen

    @property
    def notebook_folder(self) -> Path:
        return self.folder / "notebooks"

    def workers(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def write_uwsgi_ini(folder: Path, settings: dict | None = None) -> Path:
    """The shipped uwsgi.ini, serving a throw-away demo from ``folder`` with debug logging.

    ``settings`` are added to the site's settings.
    """
    demo_ini = write_demo_ini(folder)
    text = UWSGI_INI.read_text()
    use = "use = config:{}".format(demo_ini)
    for name, value in (settings or {}).items():
        use += "\n{} = {}".format(name, value)
    text = replace_once(text, "use = config:development.ini", use, "uwsgi.ini")
    text = replace_once(
        text,
        "level = INFO\nhandlers =\nqualname = pyramid_notebook",
        "level = DEBUG\nhandlers =\nqualname = pyramid_notebook",
        "uwsgi.ini",
    )
    path = folder / "uwsgi.ini"
    path.write_text(text)
    return path


def stop_process(process: subprocess.Popen, stop_signal=signal.SIGINT) -> None:
    """Stop a server we started, by its pid; kill it and its children if it does not stop in time."""
    if process.poll() is None:
        try:
            children = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        process.send_signal(stop_signal)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            logger.warning("pid %d did not stop in %d s: killing it", process.pid, STOP_TIMEOUT)
            process.kill()
            process.wait()
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
    else:
        process.wait()


@contextmanager
def running_uwsgi(folder: Path, extra_args: list[str] = (), settings: dict | None = None):
    """Serve the demo under uWSGI with the shipped options on a free port.

    ``extra_args`` are added to uWSGI's command line, ``settings`` to the
    site's.  Stops uWSGI and every notebook under the folder afterwards.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ini = write_uwsgi_ini(folder, settings)
    port = free_port()
    log = folder / "uwsgi.log"
    command = [str(UWSGI), "--ini", "{}:uwsgi-options".format(ini), "--http-socket", "127.0.0.1:{}".format(port)]
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [*command, *extra_args], stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, cwd=folder
        )
    site = UwsgiSite("http://127.0.0.1:{}".format(port), port, folder, log, process)

    def answers():
        if process.poll() is not None:
            return True
        try:
            return requests.get(site.base + "/login", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    try:
        if not wait_for(answers, START_TIMEOUT) or process.poll() is not None:
            raise AssertionError("uWSGI did not start; its log:\n" + site.log_text()[-5000:])
        yield site
    finally:
        try:
            stop_process(process)
        finally:
            left = stop_all_notebooks(site.notebook_folder)
            assert not left, "notebooks still running for {}".format(left)


@contextmanager
def running_nginx(folder: Path, upstream_port: int):
    """Run the shipped nginx.conf in the foreground in front of ``upstream_port``; yield its base URL."""
    folder = Path(folder)
    prefix = folder / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    text = NGINX_CONF.read_text()
    text = replace_once(text, "listen 127.0.0.1:8000;", "listen 127.0.0.1:{};".format(port), "nginx.conf")
    text = replace_once(text, "server 127.0.0.1:8080;", "server 127.0.0.1:{};".format(upstream_port), "nginx.conf")
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    log = prefix / "nginx.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = "http://127.0.0.1:{}".format(port)

    def answers():
        if process.poll() is not None:
            return True
        try:
            requests.get(base + "/login", timeout=5)
            return True
        except requests.RequestException:
            return False

    try:
        if not wait_for(answers, START_TIMEOUT) or process.poll() is not None:
            raise AssertionError("nginx did not start; its log:\n" + log.read_text(errors="replace"))
        yield base
    finally:
        # SIGQUIT: nginx's graceful stop; it waits for open websockets to end,
        # which the tests have closed by now.
        stop_process(process, signal.SIGQUIT)


def start_notebook(site: UwsgiSite, username: str, notebook_args: list[str] = BIG_OUTPUT_ARGS) -> dict:
    """Start ``username``'s notebook the way the site would, with extra server arguments; return its context."""
    manager = NotebookManager(
        site.notebook_folder, min_port=MIN_PORT, port_range=PORT_RANGE, kill_timeout=600, notebook_args=notebook_args
    )
    context, _created = manager.start_notebook_on_demand(username, {"notebook_path": "/notebook/"})
    return context


def log_in(base: str, username: str, password: str = PASSWORD) -> requests.Session:
    """A requests session logged in to the demo at ``base``: a plain one, with keep-alive, as API clients use."""
    session = requests.Session()
    page = session.get(base + "/login", timeout=10)
    page.raise_for_status()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = session.post(
        base + "/login",
        data={"csrf_token": token, "came_from": "", "username": username, "password": password},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, "login failed: {} {}".format(response.status_code, response.text[:300])
    return session


def cookie_header(session: requests.Session) -> str:
    return "; ".join("{}={}".format(name, value) for name, value in session.cookies.items())

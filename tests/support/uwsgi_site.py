"""The demo site under a real uWSGI (and nginx), configured by the shipped uwsgi.ini and nginx.conf.

The shipped files are copied into a temporary folder with only what must
differ in a test changed: the addresses, the demo INI (a throw-away database
and notebook folder), and the log level.  Everything else (threads,
websocket limits, the prefix filter, nginx's proxy settings) is what ships.
"""
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from pyramid_notebook.manager import NotebookManager
from pyramid_notebook.protocol.context import NotebookContext
from tests.support.demo import write_demo_ini
from tests.support.servers import (
    REPOSITORY,
    free_port,
    replace_once,
    serving_demo_process,
    stop_process,
    wait_until_serving,
)

UWSGI_INI = REPOSITORY / "uwsgi.ini"
NGINX_CONF = REPOSITORY / "nginx.conf"
UWSGI = Path(sys.executable).with_name("uwsgi")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

#: Notebook ports for these tests, apart from the other test modules' ranges.
MIN_PORT = 23000
PORT_RANGE = 100

#: Lets the tests' 20 MB outputs through: Jupyter drops output faster than
#: 1 MB/s by default (``iopub_data_rate_limit``).
BIG_OUTPUT_ARGS = ["--ServerApp.iopub_data_rate_limit=1e12"]


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
        """Where the site keeps its users' work folders."""
        return self.folder / "notebooks"

    def workers(self) -> list[psutil.Process]:
        """uWSGI's worker processes."""
        return psutil.Process(self.process.pid).children()

    def log_text(self) -> str:
        """Everything uWSGI and the site logged so far."""
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
    base = "http://127.0.0.1:{}".format(port)
    command = [str(UWSGI), "--ini", "{}:uwsgi-options".format(ini), "--http-socket", "127.0.0.1:{}".format(port)]
    with serving_demo_process(
        [*command, *extra_args], folder, base, "uWSGI", lambda process, log: UwsgiSite(base, port, folder, log, process)
    ) as site:
        yield site


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
    try:
        wait_until_serving(process, base + "/login", lambda response: True, "nginx", log)
        yield base
    finally:
        # SIGQUIT: nginx's graceful stop; it waits for open websockets to end,
        # which the tests have closed by now.
        stop_process(process, signal.SIGQUIT)


def start_notebook(site: UwsgiSite, username: str, notebook_args: list[str] = BIG_OUTPUT_ARGS) -> NotebookContext:
    """Start ``username``'s notebook the way the site would, with extra server arguments; return its context."""
    manager = NotebookManager(
        site.notebook_folder, min_port=MIN_PORT, port_range=PORT_RANGE, kill_timeout=600, notebook_args=notebook_args
    )
    context, _created = manager.start_notebook_on_demand(username, NotebookContext(notebook_path="/notebook/"))
    return context

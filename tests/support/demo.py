"""The demo site for tests and benchmarks: its accounts, an INI in a temporary folder, and waitress in-process.

The demo under ``pserve``, uWSGI and nginx is in :mod:`tests.support.pserve_site`
and :mod:`tests.support.uwsgi_site`.
"""
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from pyramid.paster import get_app
from webtest.http import StopableWSGIServer

from pyramid_notebook.manager import NotebookManager
from pyramid_notebook.waiting import wait_for
from tests.support.notebooks import stop_all
from tests.support.servers import development_waitress_options

#: The demo's accounts (see pyramid_notebook.demo.models) and who may open shells.
PASSWORD = "password"
SUPERUSERS = ("user", "user2")
OUTSIDER = "outsider"

#: Seconds a notebook launched through the site may take to serve.
START_SECONDS = 60

INI_TEMPLATE = """\
[app:main]
use = egg:pyramid_notebook#demo
sqlalchemy.url = sqlite:///{folder}/var/demo.sqlite
pyramid_notebook.demo.secret = test-secret-only-for-the-test-suite
pyramid_notebook.demo.superusers = {superusers}
pyramid_notebook.notebook_folder = {folder}/notebooks
pyramid_notebook.kill_timeout = 600
pyramid_notebook.start_timeout = 60
pyramid_notebook.websocket_proxy =
{extra}

[server:main]
use = egg:waitress#main
listen = 127.0.0.1:0
"""


def write_demo_ini(folder: Path, **extra_settings) -> Path:
    """A complete demo INI whose database and notebooks live in ``folder``.

    A real file is needed, not just settings: each notebook kernel loads the
    site again from it.  The database's ``var/`` folder does not exist yet,
    so the demo's first start has to create it.
    """
    folder = Path(folder).resolve()
    extra = "\n".join("{} = {}".format(key, value) for key, value in extra_settings.items())
    path = folder / "demo-test.ini"
    path.write_text(INI_TEMPLATE.format(folder=folder, superusers=" ".join(SUPERUSERS), extra=extra))
    return path


def notebook_folder_of(ini_path: Path) -> Path:
    """Where the site configured by ``ini_path`` keeps its notebooks: ``notebooks/`` beside the INI file."""
    return Path(ini_path).parent / "notebooks"


@dataclass
class ServedSite:
    """A site served in this process, as the tests see it: its address, its WSGI app and where its notebooks live."""

    url: str
    app: object
    ini: Path

    @property
    def manager(self) -> NotebookManager:
        """The site's own manager, from its registry."""
        return self.app.registry.notebook_manager

    @property
    def notebook_folder(self) -> Path:
        """Where the site keeps its users' work folders."""
        return notebook_folder_of(self.ini)

    def __call__(self, path: str) -> str:
        """The absolute URL of ``path`` on the site."""
        return self.url + path


#: The demo as the tests see it.
DemoSite = ServedSite


@contextmanager
def serving(ini: Path):
    """The site of ``ini`` served by waitress in this process on a free localhost port, as ``pserve`` would serve it.

    Its notebooks must live in ``notebooks/`` beside the INI file.  Stops the
    server and every notebook afterwards, and fails if one would not stop.
    """
    app = get_app(str(ini))
    server = StopableWSGIServer.create(app, **development_waitress_options())
    try:
        assert server.wait(), "the site's server did not start"
        yield ServedSite(url=server.application_url.rstrip("/"), app=app, ini=ini)
    finally:
        server.shutdown()
        left = stop_all(notebook_folder_of(ini))
        assert not left, "notebooks still running for {}".format(left)


@contextmanager
def running_demo(folder: Path, **extra_settings):
    """The demo served in this process (see :func:`serving`)."""
    with serving(write_demo_ini(folder, **extra_settings)) as site:
        yield site


def launch_shell(session: requests.Session, base: str, shell: str = "/shell1") -> None:
    """Launch the logged-in user's shell through the demo at ``base`` and wait until their notebook serves."""
    response = session.get(base + shell, allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text[:300]
    status_url = base + "/notebook/_pyramid_notebook/status"
    state = wait_for(lambda: session.get(status_url, timeout=10).json()["state"] != "starting", START_SECONDS)
    assert state and session.get(status_url, timeout=10).json()["state"] == "running"

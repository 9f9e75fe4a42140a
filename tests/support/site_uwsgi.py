"""Run the test site (:mod:`tests.support.site`) under a real uWSGI, with the shipped uwsgi.ini's options.

The shipped file is copied with only its app changed: ``[app:site]`` serves
the test site with the given settings instead of the demo.  Everything else
is what ships: ``[uwsgi-options]`` (processes and threads, thunder lock,
buffer size, websocket limits), the pipeline with its connection-close and
prefix filters, the websocket relay setting and the log configuration.  The
socket is an ``http-socket`` on a free port, as the shipped ``[uwsgi]``
section has it.  For the proxy benchmark, beside :mod:`.site_server` (the
same site under waitress).
"""
import subprocess
from contextlib import contextmanager
from pathlib import Path

from tests.support.notebooks import stop_all
from tests.support.servers import REPOSITORY, free_port, replace_once, stop_process, wait_until_serving
from tests.support.uwsgi_site import UWSGI, UWSGI_INI, UwsgiSite

#: The shipped app section's first lines, replaced by the test site.
SHIPPED_APP = "[app:site]\nuse = config:development.ini\n"


def write_test_site_uwsgi_ini(folder: Path, settings: dict) -> Path:
    """The shipped uwsgi.ini serving the test site with ``settings``, written into ``folder``."""
    app = "[app:site]\nuse = call:tests.support.site:main\n"
    app += "".join("{} = {}\n".format(name, value) for name, value in settings.items())
    text = replace_once(UWSGI_INI.read_text(), SHIPPED_APP, app, "uwsgi.ini")
    path = folder / "uwsgi.ini"
    path.write_text(text)
    return path


@contextmanager
def running_test_site_under_uwsgi(folder: Path, **settings):
    """Serve the test site under uWSGI on a free port; yield a :class:`UwsgiSite`.

    Its notebooks live in ``folder/notebooks`` (``site.notebook_folder``),
    which a waitress test site may share; ``settings`` are added to the
    site's.  Stops uWSGI and every notebook under that folder afterwards.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    notebook_folder = folder / "notebooks"
    ini = write_test_site_uwsgi_ini(folder, {"pyramid_notebook.notebook_folder": notebook_folder, **settings})
    port = free_port()
    log = folder / "uwsgi.log"
    command = [
        str(UWSGI),
        "--ini",
        "{}:uwsgi-options".format(ini),
        "--http-socket",
        "127.0.0.1:{}".format(port),
        # uWSGI's chdir is the INI's folder: the test site is imported from the repository.
        "--pythonpath",
        str(REPOSITORY),
    ]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    site = UwsgiSite("http://127.0.0.1:{}".format(port), port, folder, log, process)
    try:
        # Without a user header the proxy refuses: the site is up.
        wait_until_serving(
            process, site.base + "/notebook/api/status", lambda response: response.status_code == 403, "uWSGI", log
        )
        yield site
    finally:
        try:
            stop_process(process)
        finally:
            left = stop_all(notebook_folder)
            assert not left, "notebooks still running for {}".format(left)

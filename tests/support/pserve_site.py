"""The demo under a real ``pserve`` with the shipped development.ini (waitress, 8 threads)."""
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import DEVELOPMENT_INI, free_port, replace_once, serving_demo_process

PSERVE = Path(sys.executable).with_name("pserve")


@dataclass
class PserveSite:
    """The demo under a running ``pserve``."""

    base: str
    folder: Path
    log: Path
    process: subprocess.Popen

    @property
    def notebook_folder(self) -> Path:
        """Where the site keeps its users' work folders."""
        return self.folder / "var" / "notebooks"

    def log_text(self) -> str:
        """Everything pserve and the site logged so far."""
        return self.log.read_text(errors="replace")


def write_pserve_ini(folder: Path, port: int, settings: dict) -> Path:
    """The shipped development.ini on ``port`` with ``settings`` added; its data under ``folder/var``."""
    text = DEVELOPMENT_INI.read_text()
    text = replace_once(text, "listen = localhost:9999", "listen = 127.0.0.1:{}".format(port), "development.ini")
    anchor = "pyramid_notebook.websocket_proxy =\n"
    added = "".join("{} = {}\n".format(name, value) for name, value in settings.items())
    text = replace_once(text, anchor, anchor + added, "development.ini")
    path = folder / "development.ini"
    path.write_text(text)
    return path


@contextmanager
def running_pserve(folder: Path, settings: dict):
    """Serve the demo with ``pserve`` and the shipped development.ini plus ``settings``, on a free port.

    Stops pserve and every notebook under its folder afterwards.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ini = write_pserve_ini(folder, port, settings)
    base = "http://127.0.0.1:{}".format(port)
    command = [str(PSERVE), str(ini)]
    with serving_demo_process(
        command, folder, base, "pserve", lambda process, log: PserveSite(base, folder, log, process)
    ) as site:
        yield site

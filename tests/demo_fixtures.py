"""Shared helpers for the demo's tests: a demo INI in a temporary folder, and clean-up.

Used as a pytest plugin (``pytest_plugins = ["tests.demo_fixtures"]``): its
report hook saves what the browsers of a failing browser test show.
"""
import logging
import shutil
from pathlib import Path

import psutil
import pytest

from pyramid_notebook.notebookmanager import NotebookManager
from pyramid_notebook.server.processes import is_gone
from pyramid_notebook.server.processes import process_tree as daemon_process_tree

logger = logging.getLogger(__name__)

#: The demo's accounts (see pyramid_notebook.demo.models) and who may open shells.
PASSWORD = "password"
SUPERUSERS = ("user", "user2")
OUTSIDER = "outsider"

#: Where failing browser tests leave a screenshot and the page HTML.
ARTIFACTS_FOLDER = Path(__file__).resolve().parent.parent / "test-artifacts"

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
    return Path(ini_path).parent / "notebooks"


def stop_all_notebooks(notebook_folder: Path) -> list[str]:
    """Stop every notebook under ``notebook_folder``; return the names of those that still run.

    Waits (inside ``stop_notebook``) until each daemon and its kernels are gone.
    """
    if not Path(notebook_folder).is_dir():
        return []
    manager = NotebookManager(notebook_folder)
    left = []
    for work_folder in sorted(Path(notebook_folder).iterdir()):
        if not work_folder.is_dir() or work_folder.name.startswith("."):
            continue
        name = work_folder.name
        pid = manager.get_pid(name)
        kernels = process_tree(pid)
        manager.stop_notebook(name)
        if manager.get_pid(name) is not None or any(is_alive(process) for process in kernels):
            left.append(name)
    return left


def process_tree(pid: int | None) -> list[psutil.Process]:
    """The process and its descendants (a notebook's kernels), or nothing."""
    return [] if pid is None else daemon_process_tree(pid)


def is_alive(process: psutil.Process) -> bool:
    """False once the process has exited; a zombie waiting to be reaped has exited."""
    return not is_gone(process)


#: Set by browser tests on their test item: the browsers they opened, and the
#: notebook folder whose logs are worth keeping when the test fails.
BROWSERS_KEY = pytest.StashKey[list]()
NOTEBOOK_FOLDER_KEY = pytest.StashKey[Path]()


def artifact_folder(item) -> Path:
    safe_name = "".join(character if character.isalnum() or character in "-_." else "_" for character in item.name)
    return ARTIFACTS_FOLDER / "{}-{}".format(Path(item.fspath).stem, safe_name)


def save_artifacts(item) -> Path:
    """Save each open browser's screenshot, HTML, address and console, and the notebooks' logs."""
    folder = artifact_folder(item)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for number, browser in enumerate(item.stash.get(BROWSERS_KEY, []), start=1):
        try:
            browser.driver.save_screenshot(str(folder / "browser{}.png".format(number)))
            (folder / "browser{}.html".format(number)).write_text(browser.html, encoding="utf-8")
            (folder / "browser{}.url".format(number)).write_text(browser.url + "\n", encoding="utf-8")
            console = browser.driver.get_log("browser")
            (folder / "browser{}.console.txt".format(number)).write_text(
                "".join("{level} {message}\n".format(**entry) for entry in console), encoding="utf-8"
            )
        except Exception:  # a crashed browser must not hide the test's own failure
            logger.exception("Could not save what browser %d showed", number)
    notebook_folder = item.stash.get(NOTEBOOK_FOLDER_KEY, None)
    if notebook_folder is not None:
        for log in Path(notebook_folder).glob("*/notebook.*.log"):
            shutil.copy(log, folder / "{}-{}".format(log.parent.name, log.name))
    return folder


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item; when a browser test fails, save what its browsers show.

    This runs before the test's fixtures are torn down, so the browsers and
    notebooks are still there.  The folder is named in the failure report.
    """
    report = yield
    setattr(item, "rep_" + report.when, report)
    if report.failed and report.when in ("setup", "call") and item.stash.get(BROWSERS_KEY, None):
        folder = save_artifacts(item)
        logger.error("Browser test %s failed: screenshots and page HTML in %s", item.nodeid, folder)
        report.sections.append(("browser artifacts", "Screenshots, page HTML and notebook logs: {}".format(folder)))
    return report


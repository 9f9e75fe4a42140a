"""A pytest plugin for the browser tests: their browsers, and when one fails, what its browsers show.

Loaded for every test module by ``pytest_plugins`` in ``tests/conftest.py``.
The ``browser`` and ``open_browser`` fixtures keep the browsers they open on
the test item under :data:`BROWSERS_KEY`; a module's autouse fixture
records the notebook folder whose logs are worth keeping under
:data:`NOTEBOOK_FOLDER_KEY` through :func:`notebooks_stopped_after`.
"""
import logging
import shutil
from pathlib import Path

import pytest

from tests.support.chromium import new_browser
from tests.support.notebooks import stop_all
from tests.support.servers import REPOSITORY

logger = logging.getLogger(__name__)

#: Where failing browser tests leave a screenshot and the page HTML.
ARTIFACTS_FOLDER = REPOSITORY / "test-artifacts"

#: Set by browser tests on their test item: the browsers they opened, and the
#: notebook folder whose logs are worth keeping when the test fails.
BROWSERS_KEY = pytest.StashKey[list]()
NOTEBOOK_FOLDER_KEY = pytest.StashKey[Path]()


@pytest.fixture
def open_browser(request):
    """Open headless Chromium windows, kept on the test item for the failure artifacts; all closed after the test."""
    opened = request.node.stash.setdefault(BROWSERS_KEY, [])

    def open_one():
        browser = new_browser()
        opened.append(browser)
        return browser

    yield open_one
    for browser in opened:
        try:
            browser.quit()
        except Exception:  # a browser that crashed is already gone
            logger.exception("Could not close a browser")


@pytest.fixture
def browser(open_browser):
    """One headless Chromium window, as ``open_browser`` opens them."""
    return open_browser()


def notebooks_stopped_after(request, notebook_folder: Path):
    """The body of a module's autouse fixture: stop every notebook after each test, and fail it if one would not stop.

    Also names the folder whose notebook logs a failing test keeps.
    """
    request.node.stash[NOTEBOOK_FOLDER_KEY] = notebook_folder
    yield
    left = stop_all(notebook_folder)
    assert not left, "Notebooks still running after the test: {}".format(left)


def artifact_folder(item) -> Path:
    """The folder for a test's artifacts, named after its module and test (safe for file names)."""
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
    """When a browser test fails, save what its browsers show.

    This runs before the test's fixtures are torn down, so the browsers and
    notebooks are still there.  The folder is named in the failure report.
    """
    report = yield
    if report.failed and report.when in ("setup", "call") and item.stash.get(BROWSERS_KEY, None):
        folder = save_artifacts(item)
        logger.error("Browser test %s failed: screenshots and page HTML in %s", item.nodeid, folder)
        report.sections.append(("browser artifacts", "Screenshots, page HTML and notebook logs: {}".format(folder)))
    return report

"""The manual's pictures of the demo, taken in headless Chromium: docs/_static/screenshots/.

Each test walks through the demo as a user would, checks that the page
shows what the manual says it shows, and saves a 1280x800 PNG of it: into
``test-artifacts/screenshots/`` in a test run, so that a run leaves the work
tree as it was, and into the manual's ``docs/_static/screenshots/`` under
``make screenshots`` (which sets ``PYRAMID_NOTEBOOK_SCREENSHOTS``).  When a
page changes, run that and commit the new PNGs.

The demo runs from an INI file in a temporary folder under waitress in this
process, as in ``tests/test_browser.py``; every notebook is stopped after
each test, and a failing test leaves its browsers' pages under ``test-artifacts/``.
"""
import base64
import logging
import os
from pathlib import Path

import pytest

from pyramid_notebook.manager import RUNNING
from pyramid_notebook.waiting import wait_for
from tests.support.browser_artifacts import notebooks_stopped_after
from tests.support.chromium import (
    NOTEBOOK_READY_SECONDS,
    PAGE_SECONDS,
    page_text,
    run_cell,
    wait_for_notebook,
)
from tests.support.demo import launch_shell, running_demo
from tests.support.login import log_in_browser, log_in_session
from tests.support.servers import REPOSITORY

logger = logging.getLogger(__name__)

#: Where the screenshots go: the folder this variable names (the manual's, under
#: ``make screenshots``), else one that git ignores.
SCREENSHOTS = REPOSITORY / os.environ.get("PYRAMID_NOTEBOOK_SCREENSHOTS", "test-artifacts/screenshots")

#: The size of every screenshot, in CSS pixels at a device scale of 1.
WIDTH, HEIGHT = 1280, 800

#: The progress page's poll, held back by the browser so that the page stays up for its picture.
STATUS_POLL = "*/_pyramid_notebook/status*"

#: A notebook argument with a typo, as an operator might write it: Jupyter exits at start with the reason.
BAD_NOTEBOOK_ARGUMENT = "--ServerApp.iopub_data_rate_limit=lots"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The demo served by waitress on a free localhost port."""
    with running_demo(tmp_path_factory.mktemp("screenshot-demo")) as running:
        yield running


def save_screenshot(browser, name: str) -> Path:
    """Save what the browser shows as ``<name>.png`` in SCREENSHOTS, WIDTH x HEIGHT pixels."""
    driver = browser.driver
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
    )
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (name + ".png")
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def hold_status_polls(browser, held: bool) -> None:
    """Make the browser fail (``held``) or pass the progress page's status polls.

    The page retries a failed poll every second, so while they are held it
    stays on "Starting your notebook" however fast the notebook starts.
    """
    driver = browser.driver
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": [STATUS_POLL] if held else []})


def notebook_is_running(site, username: str) -> bool:
    return site.manager.get_state(username)[0] == RUNNING


def greeting_text(browser) -> str:
    return "\n".join(page_text(browser, ".jp-MarkdownCell .jp-RenderedMarkdown"))


@pytest.fixture(autouse=True)
def stop_notebooks(request, site):
    yield from notebooks_stopped_after(request, site.notebook_folder)


def test_launch_progress_notebook_confirmation_and_admin(browser, site):
    """The launch points, the progress page, the item's shell, the restart question and the operators' page."""
    log_in_browser(browser, site.url, "user")
    assert browser.is_element_present_by_id("shell1") and browser.is_element_present_by_id("shell2")
    assert browser.find_by_id("notebook-status").text == "You have no notebook running."
    save_screenshot(browser, "home")

    browser.visit(site("/items/2"))
    assert browser.find_by_id("item-name").text == "Bicycle bell"
    assert browser.is_element_present_by_id("item-shell")
    save_screenshot(browser, "launch")

    hold_status_polls(browser, held=True)
    browser.find_by_id("item-shell").click()
    assert browser.is_element_present_by_id("pyramid-notebook-starting", wait_time=PAGE_SECONDS)
    save_screenshot(browser, "progress")
    assert wait_for(lambda: notebook_is_running(site, "user"), NOTEBOOK_READY_SECONDS), "the notebook did not start"
    hold_status_polls(browser, held=False)

    wait_for_notebook(browser, site.manager, "user")
    greeting = wait_for(lambda: "page of item 2" in greeting_text(browser) and greeting_text(browser), PAGE_SECONDS)
    assert greeting and "item: that item" in greeting, greeting_text(browser)
    run_cell(browser, "item", "<Item 2 'Bicycle bell' x12>")
    run_cell(browser, "[i.name for i in session.scalars(select(Item).limit(3))]", "Bicycle bell")
    save_screenshot(browser, "notebook")

    browser.visit(site("/shell2"))
    assert browser.is_element_present_by_id("pyramid-notebook-confirm-restart", wait_time=PAGE_SECONDS)
    assert site("/items/2/shell") in browser.find_by_id("pyramid-notebook-confirm-restart").text
    save_screenshot(browser, "confirm-restart")

    launch_shell(log_in_session(site.url, "user2"), site.url, "/shell2")
    browser.visit(site("/admin/notebooks"))
    assert browser.is_element_present_by_id("pyramid-notebook-admin", wait_time=PAGE_SECONDS)
    listed = page_text(browser, "#pyramid-notebook-admin tbody td:first-child")
    assert sorted(listed) == ["user", "user2"], listed
    save_screenshot(browser, "admin")


def test_failure_page(browser, tmp_path):
    """A notebook argument Jupyter refuses: the user sees that the start failed and why."""
    with running_demo(tmp_path, **{"pyramid_notebook.notebook_args": BAD_NOTEBOOK_ARGUMENT}) as broken_site:
        log_in_browser(browser, broken_site.url, "user")
        browser.find_by_id("shell1").click()
        failed = wait_for(lambda: "could not be started" in browser.html, NOTEBOOK_READY_SECONDS)
        assert failed, "no failure page at {}".format(browser.url)
        assert "iopub_data_rate_limit" in browser.html
        save_screenshot(browser, "failure")

"""Headless Debian Chromium for the browser tests and benchmarks (flags verified in the field notes)."""
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

#: Headless, as root, with no calls home (this machine has no internet).
CHROME_ARGUMENTS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
]

#: Notebook 7 page parts.
KERNEL_IDLE = '.jp-Notebook-ExecutionIndicator[data-status="idle"]'
CODE_EDITOR = ".jp-Notebook .jp-CodeCell .cm-content"


def chrome_options():
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in CHROME_ARGUMENTS:
        options.add_argument(argument)
    # Keep the page's console (failed websockets show up there) for the artifacts.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


def new_browser():
    """A new headless Chromium driven by splinter; fails the test with how to install it when it is missing."""
    from selenium.webdriver.chrome.service import Service
    from splinter import Browser, Config

    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail("Browser tests need {}: run `make browser`".format(" and ".join(missing)))
    return Browser("chrome", options=chrome_options(), service=Service(str(CHROMEDRIVER)), config=Config(headless=True))

"""Headless Debian Chromium for the browser tests and benchmarks (flags verified in the field notes).

Besides opening a browser: reading page text, and driving a Notebook 7
page (typing into a cell, waiting for its kernel and its output).
"""
from pathlib import Path

import pytest

from pyramid_notebook.manager import NotebookManager
from pyramid_notebook.waiting import wait_for
from tests.support.notebooks import kernel_is_connected

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

#: Seconds a page part may take to appear.
PAGE_SECONDS = 15
#: Seconds allowed for a notebook to start, open and have its kernel ready.
NOTEBOOK_READY_SECONDS = 60
#: Seconds allowed for a cell's output to appear.
OUTPUT_SECONDS = 30

#: Notebook 7 page parts.
KERNEL_IDLE = '.jp-Notebook-ExecutionIndicator[data-status="idle"]'
CODE_EDITOR = ".jp-Notebook .jp-CodeCell .cm-content"
OUTPUT = ".jp-OutputArea-output"


def chrome_options():
    """Chromium's options for the tests: headless as root, and the page's console kept."""
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


def page_text(browser, css: str) -> list[str]:
    """The visible text of every element matching ``css``, read in one go (no stale elements)."""
    script = "return Array.from(document.querySelectorAll(arguments[0])).map(element => element.innerText);"
    return browser.execute_script(script, css)


def type_into_last_cell(browser, code: str) -> None:
    """Type ``code`` into the last code cell and run it with Shift+Enter.

    The first cell is rendered again just after the notebook loads, so the
    editor found may go stale before it is clicked: find it again then.
    """

    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    def focus_editor():
        try:
            editor = browser.find_by_css(CODE_EDITOR).last
            editor.click()
            return editor
        except StaleElementReferenceException:
            return None

    editor = wait_for(focus_editor, PAGE_SECONDS)
    assert editor is not None, "no code cell to type into"
    ActionChains(browser.driver).send_keys(code).perform()
    typed = page_text(browser, CODE_EDITOR)[-1]
    assert typed == code, "the cell holds {!r}, not what was typed".format(typed)
    ActionChains(browser.driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()


def run_cell(browser, code: str, expected: str) -> str:
    """Run ``code`` in a new cell and return the output that contains ``expected``."""
    outputs_before = len(page_text(browser, OUTPUT))
    type_into_last_cell(browser, code)

    def matching_output():
        outputs = page_text(browser, OUTPUT)
        return next((text for text in outputs[outputs_before:] if expected in text), None)

    output = wait_for(matching_output, OUTPUT_SECONDS)
    assert output is not None, "no output containing {!r}; outputs: {!r}".format(expected, page_text(browser, OUTPUT))
    return output


def element_present(browser, css_selector: str) -> bool:
    """True if the page has an element matching ``css_selector`` now.

    One look, for :func:`~pyramid_notebook.waiting.wait_for` to repeat at
    its interval: splinter's own ``is_element_present`` asks the browser
    again and again without pause, and on a small machine that takes the
    CPU the page being waited for needs.
    """
    return browser.execute_script("return document.querySelector(arguments[0]) !== null;", css_selector)


def wait_for_notebook_page(browser) -> None:
    """Wait until the notebook's own page is shown (past the library's "starting" page)."""
    assert wait_for(lambda: element_present(browser, KERNEL_IDLE), NOTEBOOK_READY_SECONDS), (
        "no notebook page at {}".format(browser.url)
    )


def wait_for_kernel(browser, manager: NotebookManager, username: str) -> None:
    """Wait until the notebook page shows a connected, idle kernel.

    The page's status reads "idle" already before it has a kernel, so the
    kernel's name must be shown too, and the server must see the browser's
    connection to the kernel.
    """

    def ready():
        state = browser.execute_script(
            "const indicator = document.querySelector(arguments[0]);"
            "const name = document.querySelector('.jp-KernelName, .jp-Toolbar-kernelName');"
            "return [indicator && indicator.dataset.status, name && name.innerText];",
            ".jp-Notebook-ExecutionIndicator",
        )
        return (
            state[0] == "idle" and state[1] not in (None, "", "No Kernel") and kernel_is_connected(manager, username)
        )

    assert wait_for(ready, NOTEBOOK_READY_SECONDS), "the notebook's kernel did not connect; page at {}".format(
        browser.url
    )


def wait_for_notebook(browser, manager: NotebookManager, username: str) -> None:
    """Wait until the notebook page is shown and its kernel is connected and idle."""
    wait_for_notebook_page(browser)
    wait_for_kernel(browser, manager, username)

"""pyramid_notebook added to a small app shaped like a real one, used in Chromium.

The app (``tests/support/realapp``) has a catch-all ``/{pagename}`` route, a
root factory with ACLs, ``request.dbsession`` under pyramid_tm's explicit
transaction manager, an identity that is a ``User`` with ``.name``, and
SQLite.  It is served by waitress in this process, as ``pserve`` would serve
it.  The tests open the site shell and a page shell, change the page through
the kernel with ``commit()``, and read the change on the web site.
"""
import ast
import logging
from pathlib import Path

import pytest

from pyramid_notebook.waiting import wait_for
from tests.support.browser_artifacts import notebooks_stopped_after
from tests.support.chromium import PAGE_SECONDS, page_text, run_cell, wait_for_notebook
from tests.support.realapp.testing import RealApp, log_in_browser, page_title, running_realapp

logger = logging.getLogger(__name__)

REALAPP = Path(__file__).resolve().parent / "support" / "realapp"

#: The issue's bound on what a site writes to use pyramid_notebook.
MAX_INTEGRATION_LINES = 30

#: Marks the app's lines outside ``notebook.py`` that are there for pyramid_notebook.
INTEGRATION_MARK = "# pyramid_notebook:"


def code_lines(path: Path) -> list[str]:
    """The lines of a Python file that are code: no blank lines, comments or docstrings."""
    source = path.read_text(encoding="utf-8")
    docstring_lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and ast.get_docstring(node) is not None:
            first = node.body[0]
            docstring_lines.update(range(first.lineno, first.end_lineno + 1))
    return [
        line
        for number, line in enumerate(source.splitlines(), start=1)
        if line.strip() and not line.strip().startswith("#") and number not in docstring_lines
    ]


def integration_lines() -> list[str]:
    """Everything the app has for pyramid_notebook: its ``notebook`` module and its marked lines elsewhere."""
    marked = [line for line in code_lines(REALAPP / "__init__.py") if INTEGRATION_MARK in line]
    return code_lines(REALAPP / "notebook.py") + marked


def test_the_integration_is_at_most_30_lines_of_the_apps_code():
    lines = integration_lines()
    logger.info("The app's pyramid_notebook integration: %d lines", len(lines))
    assert len(lines) <= MAX_INTEGRATION_LINES, "\n".join(lines)
    assert any("add_notebook_routes" in line for line in lines)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_realapp(tmp_path_factory.mktemp("realapp")) as running:
        yield running


@pytest.fixture(autouse=True)
def stop_notebooks(request, app):
    yield from notebooks_stopped_after(request, app.notebook_folder)


def greeting_text(browser) -> str:
    return "\n".join(page_text(browser, ".jp-MarkdownCell .jp-RenderedMarkdown"))


def wait_for_greeting(browser, expected: str) -> str:
    found = wait_for(lambda: expected in greeting_text(browser) and greeting_text(browser), PAGE_SECONDS)
    assert found, "{!r} not in the greeting: {!r}".format(expected, greeting_text(browser))
    return found


def shown_text(browser, app: RealApp, path: str, element_id: str) -> str:
    browser.visit(app(path))
    assert browser.is_element_present_by_id(element_id, wait_time=PAGE_SECONDS), browser.html[:500]
    return browser.find_by_id(element_id).text


def test_site_shell_commits_a_change_that_the_site_shows(browser, app):
    log_in_browser(browser, app, "alice")
    browser.find_by_id("site-shell").click()
    wait_for_notebook(browser, app.manager, "alice")
    greeting = wait_for_greeting(browser, "You are alice")
    for expected in ("request:", "commit() / abort()", "Models: Page, User"):
        assert expected in greeting

    run_cell(
        browser,
        "page = request.dbsession.query(Page).filter_by(name='welcome').one(); "
        "page.title = 'Renamed in the notebook'; commit(); print(page.title, 'by', username)",
        "Renamed in the notebook by alice",
    )
    assert page_title(app.ini, "welcome") == "Renamed in the notebook"
    assert shown_text(browser, app, "/welcome", "page-title") == "Renamed in the notebook"


def test_page_shell_holds_its_page_and_another_context_asks_first(browser, app):
    log_in_browser(browser, app, "alice")
    browser.visit(app("/about"))
    browser.find_by_id("page-shell").click()
    wait_for_notebook(browser, app.manager, "alice")
    wait_for_greeting(browser, "page: the Page with id 2")
    run_cell(
        browser,
        "page.body = 'Edited through the page shell'; commit(); print(page.name, page.body)",
        "about Edited through the page shell",
    )
    assert shown_text(browser, app, "/about", "page-body") == "Edited through the page shell"

    first = app.manager.get_pid("alice")
    browser.visit(app("/shell"))
    assert browser.is_element_present_by_id("pyramid-notebook-confirm-restart", wait_time=PAGE_SECONDS)
    assert app("/about/shell") in browser.find_by_id("pyramid-notebook-confirm-restart").text
    assert app.manager.get_pid("alice") == first, "a GET asks before it throws the page shell's kernel away"
    browser.find_by_id("pyramid-notebook-restart").click()
    wait_for_notebook(browser, app.manager, "alice")
    assert app.manager.get_pid("alice") not in (None, first)
    run_cell(browser, "print('page' in globals(), username)", "False alice")

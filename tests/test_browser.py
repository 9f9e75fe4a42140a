"""The demo in a real browser: headless Chromium driven by splinter.

The demo runs from an INI file in a temporary folder (its own database and
notebook folder) under waitress in this process, as ``pserve`` would run it.
After every test, every notebook is stopped and the test fails if one would
not stop.  When a test fails, a screenshot and the HTML of each browser's
page, and the notebooks' logs, are saved under ``test-artifacts/``; the
failure report names the folder.

The time from clicking "Shell 2" to a cell's output is measured by
``benchmarks/browser_shell.py``, not here.
"""
import json
import logging
import secrets

import psutil
import pytest
import requests
from sqlalchemy import delete, select

from pyramid_notebook.demo.models import Item, get_session
from pyramid_notebook.waiting import wait_for
from tests.support.browser_artifacts import notebooks_stopped_after
from tests.support.chromium import PAGE_SECONDS, page_text, run_cell, wait_for_notebook
from tests.support.demo import OUTSIDER, DemoSite, running_demo
from tests.support.login import log_in_browser
from tests.support.notebooks import is_alive, notebook_api, process_tree, token_header

logger = logging.getLogger(__name__)

SHUTDOWN_LINK = "pyramid-notebook-shutdown"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The demo served by waitress on a free localhost port."""
    with running_demo(tmp_path_factory.mktemp("browser-demo")) as running:
        yield running


@pytest.fixture(autouse=True)
def stop_notebooks(request, site):
    yield from notebooks_stopped_after(request, site.notebook_folder)


# Helpers


def wait_for_greeting(browser, expected: str) -> str:
    """Wait until the notebook's Markdown cells show ``expected``; return their text."""
    found = wait_for(lambda: expected in greeting_text(browser) and greeting_text(browser), PAGE_SECONDS)
    assert found, "{!r} not in the greeting: {!r}".format(expected, greeting_text(browser))
    return found


def greeting_text(browser) -> str:
    return "\n".join(page_text(browser, ".jp-MarkdownCell .jp-RenderedMarkdown"))


def open_notebook(browser, site: DemoSite, path: str, username: str = "user") -> None:
    browser.visit(site(path))
    wait_for_notebook(browser, site.manager, username)


def is_gone(processes: list[psutil.Process]) -> bool:
    return not any(is_alive(process) for process in processes)


# 1-3: the launch points


def test_shell2_greeting_and_a_plus_b(browser, site):
    log_in_browser(browser, site.url, "user")
    browser.find_by_id("shell2").click()
    wait_for_notebook(browser, site.manager, "user")
    greeting = wait_for_greeting(browser, "This shell has a few extra variables")
    for expected in ("This shell has a few extra variables", "a: the string", "b: the string", 'fn(name="world")'):
        assert expected in greeting
    run_cell(browser, 'print("Output of a + b is", a + b)', "Output of a + b is foobar")


def test_progress_page_moves_on_to_the_notebook(browser, site):
    """The launch redirects at once; the "starting" page follows the start and opens the notebook by itself."""
    log_in_browser(browser, site.url, "user")
    browser.find_by_id("shell2").click()
    assert browser.is_element_present_by_id("pyramid-notebook-starting", wait_time=PAGE_SECONDS)
    wait_for_notebook(browser, site.manager, "user")
    assert not browser.is_element_present_by_id("pyramid-notebook-starting")
    assert "/notebook/notebooks/default-" in browser.url


def test_shell1_reads_real_rows_through_registry_and_session(browser, site):
    """A row added just now by the test must show up in the kernel: the data is real, not canned."""
    marker = "Added by the browser test {}".format(secrets.token_hex(4))
    with get_session(site.app.registry) as session, session.begin():
        session.add(Item(name=marker, description="", quantity=1))
    try:
        with get_session(site.app.registry) as session:
            names = sorted(session.scalars(select(Item.name)))
        log_in_browser(browser, site.url, "user")
        open_notebook(browser, site, "/shell1")
        wait_for_greeting(browser, "session: a SQLAlchemy session")
        output = run_cell(
            browser,
            'print(registry.settings["sqlalchemy.url"].endswith("demo.sqlite"), '
            "sorted(item.name for item in session.scalars(select(Item))))",
            marker,
        )
        assert output.strip() == "True {!r}".format(names)
    finally:
        with get_session(site.app.registry) as session, session.begin():
            session.execute(delete(Item).where(Item.name == marker))


def test_item_shell_holds_its_item(browser, site):
    log_in_browser(browser, site.url, "user")
    browser.visit(site("/items/2"))
    browser.find_by_id("item-shell").click()
    wait_for_notebook(browser, site.manager, "user")
    wait_for_greeting(browser, "You opened this shell from the page of item 2")
    run_cell(browser, "print(repr(item))", "<Item 2 'Bicycle bell' x12>")


# 4-5: restarting and shutting down


def test_switching_from_shell1_to_shell2_asks_then_restarts_the_notebook(browser, site):
    log_in_browser(browser, site.url, "user")
    open_notebook(browser, site, "/shell1")
    first = site.manager.get_pid("user")
    first_processes = process_tree(first)
    assert len(first_processes) >= 2, "the notebook server and its kernel"

    browser.visit(site("/shell2"))
    assert browser.is_element_present_by_id("pyramid-notebook-confirm-restart", wait_time=PAGE_SECONDS)
    assert site("/shell1") in browser.find_by_id("pyramid-notebook-confirm-restart").text
    assert site.manager.get_pid("user") == first, "a GET asks before it throws the running kernel away"
    browser.find_by_id("pyramid-notebook-restart").click()
    wait_for_notebook(browser, site.manager, "user")
    second = site.manager.get_pid("user")
    assert second is not None and second != first
    assert wait_for(lambda: is_gone(first_processes), PAGE_SECONDS), "the shell1 notebook and kernel are gone"
    run_cell(browser, 'print("Output of a + b is", a + b)', "Output of a + b is foobar")


def test_shutdown_link_returns_home_and_ends_the_process(browser, site):
    log_in_browser(browser, site.url, "user")
    open_notebook(browser, site, "/shell2")
    processes = process_tree(site.manager.get_pid("user"))
    assert len(processes) >= 2, "the notebook server and its kernel"
    # Some work first: the link must also work from a notebook with unsaved changes.
    run_cell(browser, 'print("Output of a + b is", a + b)', "Output of a + b is foobar")

    browser.find_by_id(SHUTDOWN_LINK).click()
    assert browser.is_element_present_by_id("home", wait_time=PAGE_SECONDS), "back on the home page"
    assert browser.url == site("/")
    assert browser.find_by_id("notebook-status").text == "You have no notebook running."
    assert site.manager.get_pid("user") is None
    assert wait_for(lambda: is_gone(processes), PAGE_SECONDS), "notebook processes still alive: {}".format(
        [process.pid for process in processes if is_alive(process)]
    )


# 6-8: who gets what


def test_users_have_separate_notebooks_and_cannot_reach_each_other(open_browser, site):
    manager = site.manager
    first, second = open_browser(), open_browser()
    log_in_browser(first, site.url, "user")
    open_notebook(first, site, "/shell2")
    log_in_browser(second, site.url, "user2")
    open_notebook(second, site, "/shell1", "user2")

    user, user2 = manager.get_context("user"), manager.get_context("user2")
    assert manager.get_pid("user") != manager.get_pid("user2")
    assert user.http_port != user2.http_port
    secret = "only for user {}".format(secrets.token_hex(8))
    (manager.get_work_folder("user") / "private.txt").write_text(secret)
    direct = notebook_api(user)
    kernels = requests.get(direct + "api/kernels", headers=token_header(user), timeout=10)
    user_kernels = [kernel["id"] for kernel in kernels.json()]
    assert user_kernels, "user's kernel runs"

    # Through the site, with user2's login: every path leads to user2's own notebook.
    as_user2 = requests.Session()
    for cookie in second.driver.get_cookies():
        as_user2.cookies.set(cookie["name"], cookie["value"])
    paths = [
        "files/private.txt",
        "api/contents/private.txt",
        "api/contents/" + user.notebook_name,
        "notebooks/" + user.notebook_name,
        "files/..%2Fuser%2Fprivate.txt",
        "files/%2e%2e/user/private.txt",
        "api/contents/..%2Fuser",
        "api/sessions",
        "tree/..%2Fuser",
        "user/private.txt",
        "files/private.txt?token=" + user2.token,
    ]
    for path in paths:
        response = as_user2.get(site("/notebook/") + path, timeout=30, allow_redirects=True)
        assert secret not in response.text, path
        assert user_kernels[0] not in response.text, path
        assert response.url.startswith(site("/")), "stays on the site: {}".format(path)
    listed = [kernel["id"] for kernel in as_user2.get(site("/notebook/api/kernels"), timeout=30).json()]
    assert listed and not set(listed) & set(user_kernels), "user2 sees only their own kernel"
    assert as_user2.get(site("/notebook/api/kernels/" + user_kernels[0]), timeout=30).status_code == 404
    assert as_user2.get(site("/notebook/api/contents"), timeout=30).json()["content"] is not None

    # Straight to user's notebook port: nothing without user's own token.
    for headers in ({}, token_header(user2)):
        assert requests.get(direct + "api/contents", headers=headers, timeout=10).status_code == 403
        response = requests.get(direct + "files/private.txt", headers=headers, timeout=10, allow_redirects=False)
        assert response.status_code in (302, 403), "a page redirects to Jupyter's login, an API call is refused"
        assert secret not in response.text

    second.visit(site("/notebook/files/private.txt"))
    assert secret not in second.html
    # user's notebook still works.
    run_cell(first, 'print("Output of a + b is", a + b)', "Output of a + b is foobar")


@pytest.mark.parametrize("path", ["/shell1", "/notebook/tree", "/notebook/notebooks/default-0123456789abcdef.ipynb"])
def test_logged_out_visitor_reaches_the_login_page(browser, site, path):
    browser.visit(site(path))
    assert browser.is_element_present_by_id("login-form", wait_time=PAGE_SECONDS)
    assert browser.url.startswith(site("/login?came_from="))
    assert browser.find_by_name("came_from").first.value == path.split("?")[0]


def test_visitor_is_logged_out_after_logout(browser, site):
    log_in_browser(browser, site.url, "user")
    open_notebook(browser, site, "/shell1")
    processes = process_tree(site.manager.get_pid("user"))
    browser.visit(site("/"))
    browser.find_by_id("logout").click()
    assert wait_for(lambda: is_gone(processes), PAGE_SECONDS), "logging out stops the notebook"
    assert browser.is_element_present_by_id("login-link", wait_time=PAGE_SECONDS)
    browser.visit(site("/shell1"))
    assert browser.is_element_present_by_id("login-form", wait_time=PAGE_SECONDS)
    assert site.manager.get_pid("user") is None


def test_user_off_the_whitelist_gets_403(browser, site):
    log_in_browser(browser, site.url, OUTSIDER)
    assert browser.is_element_not_present_by_id("shell1")
    for path in ("/shell1", "/shell2", "/items/1/shell", "/notebook/tree", "/notebook/shutdown"):
        browser.visit(site(path))
        assert browser.is_element_present_by_id("forbidden", wait_time=PAGE_SECONDS), path
        assert "403 Forbidden" in browser.find_by_id("forbidden").text
    assert not (site.notebook_folder / OUTSIDER).exists()



# 9: another web site attacks


ATTACK_PAGE = """<!DOCTYPE html>
<html><body>
<h1>A page on another web site</h1>
<a id="shutdown-link" href="{site}/notebook/shutdown">Win a prize</a>
<a id="launch-link" href="{site}/shell2">Win another prize</a>
<form id="redirected-form" method="post" action="/redirect">
  <input type="hidden" name="to" value="{site}/notebook/api/shutdown"><button id="redirected" type="submit">Go</button>
</form>
<iframe id="sandboxed" sandbox="allow-scripts" srcdoc='<script>
  fetch("{site}/notebook/api/shutdown", {{method: "POST", mode: "no-cors", credentials: "include"}})
    .finally(() => parent.postMessage("posted", "*"));
</script>'></iframe>
<script>
  window.framePosted = false;
  window.addEventListener("message", (event) => window.framePosted = event.data === "posted");
  window.socketResults = [];
  for (const url of {socket_urls}) {{
    const socket = new WebSocket(url);
    socket.onopen = () => window.socketResults.push("open " + url);
    socket.onerror = () => window.socketResults.push("refused " + url);
  }}
</script>
</body></html>
"""


class AttackServer:
    """Another web site on another localhost port: serves the attack page, and 307-redirects form posts.

    A 307 keeps the POST and its body; after a cross-origin redirect the
    browser sends ``Origin: null``, the case that once passed the proxy's
    check when a site ``Referer`` came along.
    """

    def __init__(self, page: str):
        import http.server
        import threading

        page_bytes = page.encode("utf-8")

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page_bytes)))
                self.end_headers()
                self.wfile.write(page_bytes)

            def do_POST(self):
                from urllib.parse import parse_qs

                length = int(self.headers.get("Content-Length", 0))
                target = parse_qs(self.rfile.read(length).decode())["to"][0]
                self.send_response(307)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                logger.info("attack page: " + args[0], *args[1:])

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:{}/".format(self.server.server_port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.server.shutdown()
        self.server.server_close()


def test_another_web_site_changes_nothing(browser, site):
    """Links, a redirected POST (Origin: null), a sandboxed frame's POSTs and websockets from another origin.

    The attack page is on another port of the same host: the browser treats
    it as the same *site*, so it even sends the demo's SameSite=Lax cookies
    with its POSTs.  Only the library's own checks stand in the way.
    """
    log_in_browser(browser, site.url, "user")
    open_notebook(browser, site, "/shell1")
    manager = site.manager
    before = manager.get_context("user")
    kernels_url = notebook_api(before) + "api/kernels"
    kernels_before = requests.get(kernels_url, headers=token_header(before), timeout=10).json()
    kernel = kernels_before[0]["id"]
    socket_urls = [
        site("/notebook/api/kernels/{}/channels".format(kernel)).replace("http://", "ws://"),
        "ws://127.0.0.1:{}/notebook/api/kernels/{}/channels".format(before.http_port, kernel),
    ]
    page = ATTACK_PAGE.format(site=site.url, socket_urls=json.dumps(socket_urls))

    def unchanged():
        now = manager.get_context("user")
        assert manager.get_state("user")[0] == "running"
        assert (now.pid, now.context_hash) == (before.pid, before.context_hash)
        kernels = requests.get(kernels_url, headers=token_header(before), timeout=10).json()
        assert [k["id"] for k in kernels] == [k["id"] for k in kernels_before]

    with AttackServer(page) as attacker:
        browser.visit(attacker.url)
        assert wait_for(lambda: browser.evaluate_script("window.framePosted"), PAGE_SECONDS), "the frame posted"
        results = wait_for(lambda: len(browser.evaluate_script("window.socketResults")) == 2 and
                           browser.evaluate_script("window.socketResults"), PAGE_SECONDS)
        assert results and not [result for result in results if result.startswith("open")], results
        unchanged()

        browser.find_by_id("shutdown-link").click()
        assert browser.is_element_present_by_id("pyramid-notebook-confirm-shutdown", wait_time=PAGE_SECONDS)
        unchanged()

        browser.visit(attacker.url)
        browser.find_by_id("launch-link").click()
        assert browser.is_element_present_by_id("pyramid-notebook-confirm-restart", wait_time=PAGE_SECONDS)
        unchanged()

        browser.visit(attacker.url)
        browser.find_by_id("redirected").click()
        assert wait_for(lambda: "Cross-site request refused" in browser.html, PAGE_SECONDS), browser.html
        unchanged()

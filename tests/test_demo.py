"""The demo site without a browser: accounts, login, permissions and launch points.

The site is built from a real INI file in a temporary folder, as ``pserve``
would build it.  Only ``test_launch_redirects_into_the_notebook`` starts a
notebook server; the kernel side of the launch points is checked by running
their startup scripts in a separate Python process, as a kernel would.
"""
import json
import re
import subprocess
import sys

import bcrypt
import pytest
import webtest
from pyramid.paster import get_app
from pyramid.scripting import prepare
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from pyramid_notebook.demo import views
from pyramid_notebook.demo.models import DEMO_ITEMS, Item, User, get_session
from pyramid_notebook.protocol.context import NotebookContext
from tests.support.demo import OUTSIDER, PASSWORD, SUPERUSERS, notebook_folder_of, write_demo_ini
from tests.support.login import log_in_testapp
from tests.support.notebooks import is_alive, process_tree, stop_all

#: Every URL that needs the ``shell`` permission.
PROTECTED_URLS = [
    "/shell1",
    "/shell2",
    "/items/1/shell",
    "/notebook/shutdown",
    "/notebook/tree",
    "/notebook/notebooks/default-0123456789abcdef.ipynb",
    "/notebook/api/contents",
    "/admin/notebooks",
]


@pytest.fixture(scope="module")
def demo_ini(tmp_path_factory):
    return write_demo_ini(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def app(demo_ini):
    return get_app(str(demo_ini))


@pytest.fixture
def testapp(app, demo_ini):
    """A fresh client (no cookies) per test; every notebook a test started is stopped after it."""
    yield webtest.TestApp(app)
    left = stop_all(notebook_folder_of(demo_ini))
    assert not left, "Notebooks still running after the test: {}".format(left)


def database_path(demo_ini):
    return demo_ini.parent / "var" / "demo.sqlite"


# First start


def test_first_start_creates_database_folder_and_accounts(app, demo_ini):
    path = database_path(demo_ini)
    assert path.is_file(), "the var/ folder and the database should be created on first start"
    engine = create_engine("sqlite:///{}".format(path))
    with Session(engine) as session:
        users = {user.username: user for user in session.scalars(select(User))}
        items = session.scalars(select(Item).order_by(Item.id)).all()
    engine.dispose()
    assert sorted(users) == sorted([*SUPERUSERS, OUTSIDER])
    for user in users.values():
        assert user.password_hash.startswith("$2b$"), "passwords are stored as bcrypt hashes"
        assert PASSWORD not in user.password_hash
        assert bcrypt.checkpw(PASSWORD.encode(), user.password_hash.encode())
    assert [item.name for item in items] == [name for name, _description, _quantity in DEMO_ITEMS]


def test_second_start_keeps_the_data(app, demo_ini):
    get_app(str(demo_ini))
    engine = create_engine("sqlite:///{}".format(database_path(demo_ini)))
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 3
        assert session.scalar(select(func.count()).select_from(Item)) == len(DEMO_ITEMS)
    engine.dispose()


# Pages and login


def test_home_lists_items_for_everyone(testapp):
    page = testapp.get("/")
    for name, _description, _quantity in DEMO_ITEMS:
        assert name in page.text
    assert page.html.find(id="login-link") is not None
    assert page.html.find(id="shell1") is None, "anonymous visitors are not offered shells"


def test_item_page_and_unknown_item(testapp):
    page = testapp.get("/items/2")
    assert page.html.find(id="item-name").text == DEMO_ITEMS[1][0]
    testapp.get("/items/999", status=404)


def test_login_form_has_the_fields_and_a_csrf_token(testapp):
    form = testapp.get("/login").forms["login-form"]
    assert {"username", "password", "csrf_token", "came_from"} <= set(form.fields)
    assert form["csrf_token"].value


def test_login_without_csrf_token_is_refused(testapp):
    testapp.post("/login", {"username": "user", "password": PASSWORD}, status=400)
    assert testapp.get("/").html.find(id="current-user") is None


def test_wrong_password_is_refused(testapp):
    page = log_in_testapp(testapp, "user", "not the password")
    assert page.status_int == 200
    assert page.html.find(id="login-error") is not None
    assert testapp.get("/").html.find(id="current-user") is None


def test_unknown_account_is_refused(testapp):
    page = log_in_testapp(testapp, "nobody")
    assert page.html.find(id="login-error") is not None


@pytest.mark.parametrize("username", [*SUPERUSERS, OUTSIDER])
def test_login_and_home_page(testapp, username):
    response = log_in_testapp(testapp, username)
    assert response.status_int == 302
    assert response.location == "http://localhost/"
    home = response.follow()
    assert home.html.find(id="current-user").text == username
    offered = home.html.find(id="shell1") is not None
    assert offered == (username in SUPERUSERS), "only whitelisted accounts are offered shells"


def test_login_goes_back_where_the_visitor_came_from(testapp):
    response = testapp.get("/items/2/shell", status=302)
    assert response.location == "http://localhost/login?came_from=%2Fitems%2F2%2Fshell"
    form = response.follow().forms["login-form"]
    assert form["came_from"].value == "/items/2/shell"
    form["username"] = "outsider"
    form["password"] = PASSWORD
    assert form.submit(status=302).location == "http://localhost/items/2/shell"


@pytest.mark.parametrize(
    "came_from", ["//evil.example/", "http://evil.example/", "https:evil.example", "/\\evil.example", "javascript:x"]
)
def test_login_never_redirects_off_site(testapp, came_from):
    assert log_in_testapp(testapp, "outsider", came_from=came_from).location == "http://localhost/"


def test_login_starts_a_new_session(testapp):
    testapp.get("/login")
    before = testapp.cookies.get("demo_session")
    log_in_testapp(testapp, "outsider")
    assert testapp.cookies.get("demo_session") != before


def test_logout_needs_post_and_csrf_token(testapp):
    log_in_testapp(testapp, "user")
    home = testapp.get("/")
    testapp.get("/logout", status=404)
    testapp.post("/logout", status=400)
    assert testapp.get("/").html.find(id="current-user") is not None, "still logged in"
    home.forms[0].submit(status=302)
    assert testapp.get("/").html.find(id="current-user") is None
    assert "/login" in testapp.get("/shell1", status=302).location


# Permissions


@pytest.mark.parametrize("url", PROTECTED_URLS)
def test_anonymous_visitor_gets_the_login_page(testapp, url):
    response = testapp.get(url, status=302)
    assert response.location.startswith("http://localhost/login?came_from=")
    assert response.follow().forms["login-form"]["came_from"].value == url


def test_anonymous_post_to_the_notebook_gets_no_further(testapp):
    response = testapp.post("/notebook/api/sessions", "{}", headers={"Origin": "http://localhost"}, status=302)
    assert response.location.startswith("http://localhost/login?")


@pytest.mark.parametrize("url", PROTECTED_URLS)
def test_account_off_the_whitelist_gets_403(testapp, url, demo_ini):
    log_in_testapp(testapp, OUTSIDER)
    page = testapp.get(url, status=403)
    assert page.html.find(id="forbidden") is not None
    assert not (notebook_folder_of(demo_ini) / OUTSIDER).exists(), "no notebook folder for the outsider"


def test_account_off_the_whitelist_cannot_post_to_the_notebook(testapp):
    log_in_testapp(testapp, OUTSIDER)
    testapp.post("/notebook/api/sessions", "{}", headers={"Origin": "http://localhost"}, status=403)


def test_unknown_item_has_no_shell(testapp):
    log_in_testapp(testapp, "user")
    testapp.get("/items/999/shell", status=404)


# Launching


def test_launch_redirects_into_the_notebook(testapp, app):
    """A real notebook: /shell1 starts it and redirects into it, /notebook/shutdown stops it."""
    manager = app.registry.notebook_manager
    log_in_testapp(testapp, "user")
    response = testapp.get("/shell1", status=302)
    assert re.fullmatch(r"http://localhost/notebook/notebooks/default-[0-9a-f]{16}\.ipynb", response.location)
    # The redirect comes before the notebook answers; its pages say so meanwhile.
    pid = manager.wait_until_running("user").pid
    assert manager.get_pid("user") == pid
    processes = process_tree(pid)

    notebook_page = response.follow()
    assert notebook_page.status_int == 200
    assert notebook_page.html.find(id="pyramid-notebook-shutdown") is not None
    assert testapp.get("/").html.find(id="notebook-status").text.startswith("Your notebook runs")

    again = testapp.get("/shell1", status=302)
    assert again.location == response.location
    assert manager.get_pid("user") == pid, "the same context reuses the running notebook"

    confirmation = testapp.get("/notebook/shutdown", status=200)
    assert manager.get_pid("user") == pid, "a GET only asks"
    stopped = confirmation.forms[0].submit(headers={"Origin": "http://localhost"}, status=302)
    assert stopped.location == "http://localhost/"
    assert manager.get_pid("user") is None
    assert not any(is_alive(process) for process in processes)
    assert testapp.get("/notebook/tree", expect_errors=True).status_int == 503


def test_operators_page_lists_and_stops_notebooks(testapp, app):
    """/admin/notebooks shows every user's notebook; its stop button is a POST with the CSRF token."""
    manager = app.registry.notebook_manager
    log_in_testapp(testapp, "user")
    assert testapp.get("/admin/notebooks").html.find(id="pyramid-notebook-admin") is None, "nothing runs yet"
    testapp.get("/shell2", status=302)
    pid = manager.wait_until_running("user").pid
    page = testapp.get("/admin/notebooks")
    table = page.html.find(id="pyramid-notebook-admin")
    assert table is not None and "user" in table.text and str(pid) in table.text
    testapp.post("/admin/notebooks", {"user": "user"}, status=400)
    assert manager.get_pid("user") == pid, "no CSRF token, no stop"
    stop_form = next(form for form in page.forms.values() if "user" in form.fields and form["user"].value == "user")
    stop_form.submit(status=302)
    assert manager.get_pid("user") is None


def test_shutdown_post_from_home_page(testapp, app):
    """The home page's button posts with the CSRF token; without it the POST is refused."""
    log_in_testapp(testapp, "user2")
    testapp.post("/notebook/shutdown", status=400)
    home = testapp.get("/")
    assert home.html.find(id="shutdown") is None, "no notebook runs, so no shutdown button"


# What the kernels get


def site_context(context: NotebookContext | dict) -> NotebookContext:
    """What a demo launch view asks for, as the launch helper reads it (the demo may build a dict or a context)."""
    return NotebookContext.from_site(context)


def kernel_output(demo_ini, context: NotebookContext, code: str) -> dict:
    """Run a context's startup script and then ``code`` in a new Python process, as a kernel would.

    ``code`` must leave a JSON-serialisable ``result``.
    """
    program = context.startup + "\n" + code + "\nimport json as _json\nprint(_json.dumps(result))\n"
    completed = subprocess.run(
        [sys.executable, "-c", program],
        cwd=demo_ini.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture
def script_request(app):
    env = prepare(registry=app.registry)
    yield env["request"]
    env["closer"]()


def test_shell1_kernel_has_site_session_and_models(demo_ini, script_request):
    context = site_context(views.shell1_context(script_request))
    for name in ("**app**", "**request**", "**root**", "**registry**", "**session**", "`Item`", "`User`"):
        assert name in context.greeting
    result = kernel_output(
        demo_ini,
        context,
        'result = [registry.settings["sqlalchemy.url"], [item.name for item in session.scalars(select(Item))],'
        " type(root).__name__, session.scalar(select(User).where(User.username == 'user2')).username]",
    )
    assert result == [
        "sqlite:///{}".format(database_path(demo_ini)),
        [name for name, _description, _quantity in DEMO_ITEMS],
        "Root",
        "user2",
    ]


def test_shell2_kernel_has_a_b_and_fn(demo_ini, script_request):
    context = site_context(views.shell2_context(script_request))
    for name in ("**a**", "**b**", "**fn"):
        assert name in context.greeting
    assert kernel_output(demo_ini, context, 'result = [a + b, fn("Pyramid")]') == ["foobar", "Hello, Pyramid!"]


def test_item_kernel_has_the_item(demo_ini, script_request, app):
    with get_session(app.registry) as session:
        item = session.get(Item, 3)
        context = site_context(views.item_context(script_request, item))
    assert "**item**" in context.greeting
    assert "item 3" in context.greeting
    assert kernel_output(demo_ini, context, "result = [item.id, item.name]") == [3, DEMO_ITEMS[2][0]]


def test_launch_points_have_different_contexts(script_request, app):
    """Different contexts restart the notebook, so each launch point must have its own."""
    with get_session(app.registry) as session:
        contexts = [
            views.shell1_context(script_request),
            views.shell2_context(script_request),
            views.item_context(script_request, session.get(Item, 1)),
            views.item_context(script_request, session.get(Item, 2)),
        ]
    assert len({site_context(context).compute_hash() for context in contexts}) == len(contexts)

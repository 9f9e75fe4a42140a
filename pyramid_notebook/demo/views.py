"""The demo's pages and its notebook launch points.

Each launch point builds a notebook context (the Python every kernel runs
first, and the Markdown greeting that explains it) and hands it to
:func:`pyramid_notebook.views.launch_notebook`.  Different contexts mean
different notebooks: opening ``/shell2`` after ``/shell1`` restarts the
user's notebook with the new variables.  All of them need the ``shell``
permission, which only whitelisted accounts have (see :mod:`.security`).
"""
import logging
from urllib.parse import urlsplit

from pyramid.csrf import get_csrf_token
from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.security import forget, remember
from pyramid.view import forbidden_view_config, view_config
from sqlalchemy import select

from pyramid_notebook import startup
from pyramid_notebook.admin import notebook_admin
from pyramid_notebook.demo.models import Base, Item, authenticate
from pyramid_notebook.origin import CrossSiteRequestRefused
from pyramid_notebook.views import launch_notebook, stop_on_logout

logger = logging.getLogger(__name__)

#: Settings key under which :func:`pyramid_notebook.demo.main` keeps the
#: paste ``global_config``: the kernel needs the INI file's path.
GLOBAL_CONFIG_KEY = "pyramid_notebook.demo.global_config"

#: A database session for the notebook, on the engine of the bootstrapped site.
SESSION_SCRIPT = """\
from pyramid_notebook.demo.models import get_session as _get_session

session = _get_session(registry)
"""

SESSION_GREETING = """\
* **session**: a SQLAlchemy session on the site's database, e.g. `session.scalars(select(Item)).all()`;
  call `session.commit()` to keep changes
* **select**: `sqlalchemy.select`
"""

SHELL2_SCRIPT = '''\
a = "foo"
b = "bar"


def fn(name="world"):
    """Say hello: shows that the launch point can hand over functions too."""
    return "Hello, {}!".format(name)
'''

SHELL2_GREETING = """\
This shell has a few extra variables:

* **a**: the string `"foo"`
* **b**: the string `"bar"`
* **fn(name="world")**: returns a greeting, e.g. `fn("Pyramid")`

Try `print("Output of a + b is", a + b)`.
"""

ITEM_SCRIPT = """\
item = session.get(Item, {item_id!r})
"""

ITEM_GREETING = """\
You opened this shell from the page of item {item_id}:

* **item**: that item, `Item` id {item_id} (`{name}` when the shell was launched)
"""


def base_context(request) -> dict:
    """The context of every demo shell: the bootstrapped site, the database session and the models."""
    global_config = request.registry.settings[GLOBAL_CONFIG_KEY]
    nb = {}
    startup.make_startup(nb, global_config["__file__"], cwd=global_config.get("here", ""))
    startup.add_script(nb, "from sqlalchemy import select")
    startup.include_sqlalchemy_models(nb, Base)
    startup.add_script(nb, SESSION_SCRIPT)
    startup.add_greeting(nb, SESSION_GREETING)
    return nb


def shell1_context(request) -> dict:
    return base_context(request)


def shell2_context(request) -> dict:
    nb = base_context(request)
    startup.add_script(nb, SHELL2_SCRIPT)
    startup.add_greeting(nb, SHELL2_GREETING)
    return nb


def item_context(request, item: Item) -> dict:
    """The base context plus ``item``, loaded again from the database in the kernel."""
    nb = base_context(request)
    startup.add_script(nb, ITEM_SCRIPT.format(item_id=item.id))
    # Backticks would end the code span early; a name is only a reminder here.
    startup.add_greeting(nb, ITEM_GREETING.format(item_id=item.id, name=item.name.replace("`", "'")))
    return nb


def current_username(request) -> str | None:
    """The logged-in account's name: the name of its notebook."""
    return None if request.identity is None else request.identity.username


def get_item(request) -> Item:
    item = request.dbsession.get(Item, int(request.matchdict["id"]))
    if item is None:
        raise HTTPNotFound()
    return item


def notebook_status(request) -> dict | None:
    """The logged-in user's notebook process, for the home page; ``None`` when none runs."""
    if request.identity is None or not request.has_permission("shell"):
        return None
    return request.registry.notebook_manager.get_notebook_status(current_username(request))


def safe_came_from(request, came_from: str | None) -> str:
    """Where to go after login: a path on this site, never another site."""
    home = request.route_url("home")
    if not came_from:
        return home
    parts = urlsplit(came_from)
    if parts.scheme or parts.netloc or not came_from.startswith("/") or came_from.startswith("//"):
        return home
    if "\\" in came_from or any(ord(character) < 32 for character in came_from):
        return home
    return request.application_url + came_from


# Pages


@view_config(route_name="home", renderer="pyramid_notebook.demo:templates/home.jinja2", permission="view")
def home(request):
    items = request.dbsession.scalars(select(Item).order_by(Item.id)).all()
    return {
        "items": items,
        "can_shell": bool(request.has_permission("shell")),
        "notebook": notebook_status(request),
    }


@view_config(route_name="item", renderer="pyramid_notebook.demo:templates/item.jinja2", permission="view")
def item_page(request):
    return {"item": get_item(request), "can_shell": bool(request.has_permission("shell"))}


# Login


@view_config(route_name="login", renderer="pyramid_notebook.demo:templates/login.jinja2")
def login(request):
    """Show the login form; on a valid POST log in and go back where the visitor came from.

    Pyramid checks the form's CSRF token before this view runs.
    """
    came_from = request.params.get("came_from", "")
    error = None
    username = ""
    if request.method == "POST":
        username = request.POST.get("username", "").strip()
        user = authenticate(request.dbsession, username, request.POST.get("password", ""))
        if user is not None:
            # A new session for the new login: a session id planted before
            # the login must not become a logged-in one.
            request.session.invalidate()
            headers = remember(request, user.id)
            logger.info("%s logged in", user.username)
            return HTTPFound(safe_came_from(request, came_from), headers=headers)
        logger.info("Failed login for %r", username)
        error = "Wrong username or password."
    return {"came_from": came_from, "error": error, "username": username, "csrf_token": get_csrf_token(request)}


@view_config(route_name="logout", request_method="POST")
def logout(request):
    """Log out, and stop the user's notebook: an open notebook tab must not outlive its login."""
    if request.identity is not None and request.has_permission("shell"):
        stop_on_logout(request, current_username(request))
    headers = forget(request)
    request.session.invalidate()
    return HTTPFound(request.route_url("home"), headers=headers)


@forbidden_view_config(renderer="pyramid_notebook.demo:templates/forbidden.jinja2")
def forbidden(request):
    """Visitors who are not logged in log in first; the others are told no, with a 403 that says why."""
    if request.identity is None:
        return HTTPFound(request.route_url("login", _query={"came_from": request.path_qs}))
    request.response.status = 403
    refused = request.exception if isinstance(request.exception, CrossSiteRequestRefused) else None
    return {"cross_site": refused.detail if refused is not None else None}


# Notebook launch points


@view_config(route_name="shell1", permission="shell")
def shell1(request):
    return launch_notebook(request, current_username(request), shell1_context(request))


@view_config(route_name="shell2", permission="shell")
def shell2(request):
    return launch_notebook(request, current_username(request), shell2_context(request))


@view_config(route_name="item_shell", permission="shell")
def item_shell(request):
    """The context-sensitive launch point: the shell opens with this page's item in it."""
    return launch_notebook(request, current_username(request), item_context(request, get_item(request)))


@view_config(route_name="notebook_admin", permission="admin")
def admin_notebooks(request):
    """The library's operators' page: every running notebook, with a stop button (a POST with the CSRF token)."""
    return notebook_admin(request)

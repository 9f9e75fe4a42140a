"""The view helpers a site calls from its own views.

The site's views do the login and permission checks; these helpers assume
they pass, and take the site's own name for the user::

    @view_config(route_name="notebook_proxy", permission="shell", require_csrf=False)
    def notebook_proxy(request):
        return pyramid_notebook.views.notebook_proxy(request, request.identity.username)

Each user's notebook is reachable only through their own proxy calls: the
proxy looks the notebook up by the user name it is given, never by anything
in the URL.

Nothing that throws a user's kernels away happens on a GET, nor on a
request from another web site: starting from a foreign link, restarting
with another context and shutting down all take a POST from the site's own
page with the site's CSRF token.  See ``docs/security.rst``.
"""
import logging
import time

from pyramid.csrf import check_csrf_token, get_csrf_token
from pyramid.httpexceptions import (
    HTTPBadRequest,
    HTTPFound,
    HTTPNotImplemented,
    HTTPServiceUnavailable,
)
from pyramid.request import Request
from pyramid.response import Response

from pyramid_notebook import pages
from pyramid_notebook.manager import (
    FAILED,
    RUNNING,
    STARTING,
    STOPPED,
    NotebookManager,
    NotebookStartError,
    check_name,
)
from pyramid_notebook.origin import CrossSiteRequestRefused, is_cross_site, is_foreign_navigation, is_websocket_upgrade
from pyramid_notebook.protocol.context import STOPPED_BY_LOGOUT, STOPPED_BY_USER, NotebookContext
from pyramid_notebook.proxy import PAGE_PATH, proxy_request

logger = logging.getLogger(__name__)

PROXY_ROUTE = "notebook_proxy"
SHUTDOWN_ROUTE = "shutdown_notebook"

#: Below the proxy route: the state of the user's notebook, as JSON, for the
#: progress page.  Jupyter has nothing at this path.  ``add_notebook_routes``
#: gives it a route of its own (STATUS_ROUTE); hand-wired sites reach it
#: through the proxy route.
STATUS_PATH = "_pyramid_notebook/status"
STATUS_ROUTE = "notebook_status"


def _manager(request: Request) -> NotebookManager:
    return request.registry.notebook_manager


def _route_exists(request: Request, name: str) -> bool:
    from pyramid.interfaces import IRoutesMapper

    mapper = request.registry.queryUtility(IRoutesMapper)
    return mapper is not None and mapper.get_route(name) is not None


def notebook_base_url(request: Request) -> str:
    """Where the browser reaches the notebook: the proxy route on the site or on the alternative domain."""
    path = request.route_path(PROXY_ROUTE, remainder="")
    alternative_domain = request.registry.notebook_settings.alternative_domain
    return (alternative_domain or request.host_url) + path


def fill_context_defaults(request: Request, notebook_context: NotebookContext | dict) -> NotebookContext:
    """The site's context completed with what the framework knows.

    ``notebook_path`` is the proxy route's path, so the notebook and the site
    agree on it.  Without a websocket proxy (development under ``pserve``,
    which cannot carry websockets) the browser opens its websockets straight
    to the notebook's localhost port, which only the daemon knows: it fills
    in ``websocket_url`` itself.  ``launch_url`` is this page: where "start
    again" leads, and what the user is told the notebook was opened from.
    """
    settings = request.registry.notebook_settings
    context = NotebookContext.from_site(notebook_context)
    context.notebook_path = request.route_path(PROXY_ROUTE, remainder="")
    context.allow_origin = settings.alternative_domain or request.host_url
    context.direct_websockets = settings.websocket_proxy is None
    if settings.websocket_proxy is not None and settings.alternative_domain:
        scheme = "wss" if settings.alternative_domain.startswith("https:") else "ws"
        host = settings.alternative_domain.split("://", 1)[1]
        context.websocket_url = "{}://{}{}".format(scheme, host, context.notebook_path)
    if _route_exists(request, SHUTDOWN_ROUTE):
        context.shutdown_url = request.route_url(SHUTDOWN_ROUTE)
    context.launch_url = request.url
    return context.with_hash()


def check_same_site_post(request: Request) -> None:
    """Refuse a state-changing POST unless it comes from the site's own page with its CSRF token.

    Raises :class:`~pyramid_notebook.origin.CrossSiteRequestRefused` (a 403)
    for a foreign ``Origin`` (``null`` included) and Pyramid's
    ``BadCSRFToken`` (a 400) for a missing or wrong token, so that the site's
    exception views can style both.
    """
    if request.method != "POST" or is_cross_site(request, request.registry.notebook_settings.alternative_domain):
        raise CrossSiteRequestRefused("This request must be a POST from the site's own page.")
    check_csrf_token(request)


def checked_name(username: str) -> str:
    """The site's name for the user, or a 400 that says why it cannot name a notebook."""
    try:
        return check_name(username)
    except ValueError as error:
        raise HTTPBadRequest(str(error)) from None


def _running_notebook_url(request: Request, context: NotebookContext) -> str:
    return notebook_base_url(request) + "notebooks/" + context.notebook_name


def _was_used(context: NotebookContext) -> bool:
    """True once somebody used the notebook: opened a page or ran code after it started."""
    return (context.last_activity or 0) > (context.started or 0)


def launch_notebook(request: Request, username: str, notebook_context: dict) -> Response:
    """Start the user's notebook, or reuse it if it runs with the same context, and redirect into it.

    The redirect comes at once: Jupyter takes seconds to start, and a web
    worker should not wait for it.  Until the notebook answers, its pages
    show a progress page that moves on by itself.

    A GET never throws a used notebook away: when the user's notebook is in
    use with another context (another page's objects, another startup
    script) the answer is a page that offers to open the running notebook or
    to restart it with this one, by a POST with the site's CSRF token.  A
    launch that a page of another web site sent gets the same kind of
    question before anything starts.  Site launch views must therefore
    accept POST as well as GET.
    """
    username = checked_name(username)
    context = fill_context_defaults(request, notebook_context)
    # The kernel is told who launched it (not hashed: the notebook is the user's anyway).
    context.set_username(username)
    manager = _manager(request)
    if request.method == "POST":
        check_same_site_post(request)
    else:
        current = manager.get_context(username)
        state, _reason = manager.get_state(username, current)
        running = state in (RUNNING, STARTING)
        if running and current.context_hash == context.context_hash:
            logger.info("Notebook for %s reused", username)
            return HTTPFound(_running_notebook_url(request, current))
        if state == RUNNING and _was_used(current):
            last_used_ago = time.time() - current.last_activity
            running_url = _running_notebook_url(request, current)
            return pages.confirm_restart_page(request, running_url, current.launch_url, last_used_ago)
        if is_foreign_navigation(request, request.registry.notebook_settings.alternative_domain):
            logger.warning("Launch for %s from another web site: asking first", username)
            return pages.confirm_start_page(request)
    try:
        running_context, created = manager.start_notebook_on_demand(username, context, wait=False)
    except NotebookStartError as error:
        logger.error("Notebook for %s could not be started", username)
        return pages.start_failed_page(request, str(error))
    logger.info("Notebook for %s %s", username, "launched" if created else "reused")
    return HTTPFound(_running_notebook_url(request, running_context))


def shutdown_notebook(request: Request, username: str, came_from: str | None = None) -> Response:
    """Stop the user's notebook and its kernels on a POST from the site; answer a GET with a confirmation form.

    Stopping throws the kernels' state away, so it is never done on a GET
    (a link on another web site would carry the user's cookies) nor on a
    POST without the site's CSRF token.  Saved notebooks stay.  After the
    stop the browser goes to ``came_from``, by default the site's front page.
    """
    username = checked_name(username)
    if request.method != "POST":
        return pages.confirm_shutdown_page(request)
    check_same_site_post(request)
    _manager(request).stop_notebook(username, reason=STOPPED_BY_USER)
    return HTTPFound(came_from or request.application_url + "/")


def stop_on_logout(request: Request, username: str) -> None:
    """Stop the user's notebook as they log out; call it from the site's logout view.

    A logged-out user's open notebook tab must stop working at once: its
    next requests through the site are refused by the site's login check,
    and stopping the notebook also ends the websockets it already has open.
    """
    _manager(request).stop_notebook(checked_name(username), reason=STOPPED_BY_LOGOUT)


def status_body(state: str, context: NotebookContext | None) -> dict:
    """What the progress page shows: the state, each step of a start done or not, and the seconds since the launch.

    The steps: the notebook's process runs, its server answers, the landing
    notebook's kernel runs (and with it the site's startup script).
    """
    context = context or NotebookContext()
    steps = {"process": context.pid is not None, "server": context.listening, "kernel": context.ready}
    elapsed = time.time() - context.launched_at if context.launched_at else 0
    return {"state": state, "steps": steps, "elapsed": round(elapsed, 1)}


def notebook_status(request: Request, username: str) -> Response:
    """The state of the user's notebook as JSON (see :func:`status_body`): what the progress page polls."""
    manager = _manager(request)
    username = checked_name(username)
    context = manager.get_context(username)
    state, _reason = manager.get_state(username, context)
    return Response(json_body=status_body(state, manager.get_context(username)), cache_control="no-store")


def _status_path(request: Request) -> str:
    if _route_exists(request, STATUS_ROUTE):
        return request.route_path(STATUS_ROUTE)
    return request.route_path(PROXY_ROUTE, remainder=STATUS_PATH)


def _unavailable(
    request: Request, username: str, remainder: str, state: str, reason: str, context: NotebookContext | None
) -> Response:
    """What the browser gets while the user's notebook is not serving: a page, or 503 JSON for the API."""
    manager = _manager(request)
    if remainder == STATUS_PATH:
        return Response(json_body=status_body(state, context), cache_control="no-store")
    if remainder.startswith("api/") or request.method != "GET":
        error = "notebook_not_running" if state == STOPPED else "notebook_" + state
        body = {"error": error, "state": state, "message": reason or "The notebook is {}.".format(state)}
        return HTTPServiceUnavailable(json_body=body, cache_control="no-store")
    if state == STARTING:
        return pages.starting_page(request, _status_path(request))
    if state == FAILED:
        return pages.start_failed_page(request, manager.describe_failure(username, reason))
    return pages.not_running_page(request, (context and context.launch_url) or request.application_url + "/")


def notebook_proxy(request: Request, username: str) -> Response:
    """Carry the request to ``username``'s own notebook, HTTP or websocket.

    Requests that could change something must come from the site's own
    pages (see :mod:`pyramid_notebook.origin`).  The proxy never starts a
    notebook: while one starts, pages show progress; without one, pages
    explain and offer to start it again, and API calls get 503.
    """
    username = checked_name(username)
    settings = request.registry.notebook_settings
    remainder = "/".join(request.matchdict.get("remainder", ())) if request.matchdict else ""
    if is_cross_site(request, settings.alternative_domain):
        logger.warning("Refused cross-site %s %s for %s", request.method, request.path, username)
        raise CrossSiteRequestRefused("Cross-site request refused: it does not come from the site's own pages.")
    manager = _manager(request)
    context = manager.get_context(username)
    state, reason = manager.get_state(username, context)
    if state != RUNNING or remainder == STATUS_PATH:
        return _unavailable(request, username, remainder, state, reason, context)
    if is_websocket_upgrade(request):
        if settings.websocket_proxy is None:
            raise HTTPNotImplemented(
                "This site carries no websockets: set pyramid_notebook.websocket_proxy, "
                "e.g. to pyramid_notebook.uwsgi.serve_websocket under uWSGI."
            )
        return settings.websocket_proxy(request, context.http_port, context.token)
    banner = None
    if context.shutdown_url and PAGE_PATH.match(remainder):
        banner = pages.banner(context.shutdown_url, get_csrf_token(request))
    return proxy_request(
        request, context.http_port, context.token, request.registry.notebook_upstream_pools, remainder, banner
    )

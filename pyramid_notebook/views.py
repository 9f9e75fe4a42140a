"""The three view helpers a site calls from its own views.

The site's views do the login and permission checks; these helpers assume
they pass, and take the site's own name for the user::

    @view_config(route_name="notebook_proxy", permission="shell", require_csrf=False)
    def notebook_proxy(request):
        return pyramid_notebook.views.notebook_proxy(request, request.identity.username)

Each user's notebook is reachable only through their own proxy calls: the
proxy looks the notebook up by the user name it is given, never by anything
in the URL.
"""
import logging

from pyramid.httpexceptions import HTTPFound
from pyramid.request import Request
from pyramid.response import Response

from pyramid_notebook import pages
from pyramid_notebook.notebookmanager import FAILED, RUNNING, STARTING, STOPPED, NotebookManager, NotebookStartError
from pyramid_notebook.origin import is_cross_site, is_websocket_upgrade
from pyramid_notebook.proxy import proxy_request
from pyramid_notebook.server.context import context_hash

logger = logging.getLogger(__name__)

PROXY_ROUTE = "notebook_proxy"
SHUTDOWN_ROUTE = "shutdown_notebook"

#: Below the proxy route: the state of the user's notebook, as JSON, for the
#: progress page.  Jupyter has nothing at this path.
STATUS_PATH = "_pyramid_notebook/status"


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


def fill_context_defaults(request: Request, notebook_context: dict) -> dict:
    """The context with what the framework knows filled in where the caller left it out.

    ``notebook_path`` is the proxy route's path, so the notebook and the site
    agree on it.  Without a websocket proxy (development under ``pserve``,
    which cannot carry websockets) the browser opens its websockets straight
    to the notebook's localhost port; ``{port}`` is filled in by the daemon.
    """
    settings = request.registry.notebook_settings
    context = dict(notebook_context)
    context.setdefault("notebook_path", request.route_path(PROXY_ROUTE, remainder=""))
    context.setdefault("allow_origin", settings.alternative_domain or request.host_url)
    if settings.websocket_proxy is None:
        context.setdefault("websocket_url", "ws://127.0.0.1:{port}" + context["notebook_path"])
    elif settings.alternative_domain:
        scheme = "wss" if settings.alternative_domain.startswith("https:") else "ws"
        host = settings.alternative_domain.split("://", 1)[1]
        context.setdefault("websocket_url", "{}://{}{}".format(scheme, host, context["notebook_path"]))
    if _route_exists(request, SHUTDOWN_ROUTE):
        context.setdefault("shutdown_url", request.route_url(SHUTDOWN_ROUTE))
    context.setdefault("context_hash", context_hash(context))
    # Where "start again" leads.  Not hashed: one notebook may be launched from many pages.
    context["launch_url"] = request.url
    return context


def launch_notebook(request: Request, username: str, notebook_context: dict) -> Response:
    """Start the user's notebook, or reuse it if it runs with the same context, and redirect into it.

    The redirect comes at once: Jupyter takes seconds to start, and a web
    worker should not wait for it.  Until the notebook answers, its pages
    show a progress page that moves on by itself.  A changed context
    (another page's objects, a new startup script) restarts the notebook.
    """
    context = fill_context_defaults(request, notebook_context)
    try:
        running, created = _manager(request).start_notebook_on_demand(username, context, wait=False)
    except NotebookStartError as error:
        logger.error("Notebook for %s could not be started", username)
        return pages.start_failed_page(str(error))
    logger.info("Notebook for %s %s", username, "launched" if created else "reused")
    return HTTPFound(notebook_base_url(request) + "notebooks/" + running["notebook_name"])


def shutdown_notebook(request: Request, username: str) -> None:
    """Stop the user's notebook and its kernels; fine when none runs.  Saved notebooks stay."""
    _manager(request).stop_notebook(username)


def _unavailable(request: Request, username: str, remainder: str, state: str, reason: str) -> Response:
    """What the browser gets while the user's notebook is not serving: a page, or 503 JSON for the API."""
    manager = _manager(request)
    if remainder == STATUS_PATH:
        return Response(json_body={"state": state}, cache_control="no-store")
    if remainder.startswith("api/") or request.method != "GET":
        error = "notebook_not_running" if state == STOPPED else "notebook_" + state
        body = {"error": error, "state": state, "message": reason or "The notebook is {}.".format(state)}
        return Response(status=503, json_body=body, cache_control="no-store")
    if state == STARTING:
        return pages.starting_page(request.route_path(PROXY_ROUTE, remainder=STATUS_PATH))
    if state == FAILED:
        return pages.start_failed_page(manager.describe_failure(username, reason))
    context = manager.get_context(username) or {}
    return pages.not_running_page(context.get("launch_url") or request.application_url + "/")


def notebook_proxy(request: Request, username: str) -> Response:
    """Carry the request to ``username``'s own notebook, HTTP or websocket.

    Requests that could change something must come from the site's own
    pages (see :mod:`pyramid_notebook.origin`).  The proxy never starts a
    notebook: while one starts, pages show progress; without one, pages
    explain and offer to start it again, and API calls get 503.
    """
    settings = request.registry.notebook_settings
    remainder = "/".join(request.matchdict.get("remainder", ())) if request.matchdict else ""
    if is_cross_site(request, settings.alternative_domain):
        logger.warning("Refused cross-site %s %s for %s", request.method, request.path, username)
        return Response(status=403, content_type="text/plain", text="Cross-site request refused.")
    manager = _manager(request)
    context = manager.get_context(username)
    state, reason = manager.get_state(username, context)
    if state != RUNNING or remainder == STATUS_PATH:
        return _unavailable(request, username, remainder, state, reason)
    if is_websocket_upgrade(request):
        if settings.websocket_proxy is None:
            return Response(
                status=501,
                content_type="text/plain",
                text="This site carries no websockets: set pyramid_notebook.websocket_proxy, "
                "e.g. to pyramid_notebook.uwsgi.serve_websocket under uWSGI.",
            )
        return settings.websocket_proxy(request, context["http_port"], context["token"])
    banner = pages.banner(context["shutdown_url"]) if context.get("shutdown_url") else None
    return proxy_request(
        request, context["http_port"], context["token"], request.registry.notebook_upstream_session, remainder, banner
    )

"""``config.add_notebook_routes()``: the notebook's routes and views, wired in one call.

::

    config.include("pyramid_notebook")
    config.add_notebook_routes(prefix="/notebook", permission="shell", username="myapp.security.username")

It adds, in this order, so that the proxy's catch-all comes last:

* ``notebook_status``: ``{prefix}/_pyramid_notebook/status``, the state the
  progress page polls;
* ``shutdown_notebook``: ``{prefix}/shutdown``, a POST with the site's CSRF
  token (a GET shows a confirmation form);
* ``notebook_proxy``: ``{prefix}/*remainder``, everything else, HTTP and
  websockets, to the user's own notebook.

Each view is guarded by ``permission`` and calls the public helpers of
:mod:`pyramid_notebook.views` with ``username(request)``.  The site still
writes its own launch views: only the site knows what a notebook should hold.
"""
from collections.abc import Callable

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPForbidden
from pyramid.request import Request
from pyramid.response import Response

from pyramid_notebook import views

#: The discriminator of the directive's own action: calling it twice is a
#: configuration conflict that Pyramid reports with both call sites.
DISCRIMINATOR = ("pyramid_notebook", "notebook routes")


def authenticated_userid(request: Request) -> str | None:
    """The default user name: Pyramid's ``request.authenticated_userid``, as text."""
    userid = request.authenticated_userid
    return None if userid is None else str(userid)


def add_notebook_routes(
    config: Configurator,
    prefix: str = "/notebook",
    permission: str | None = None,
    username: Callable[[Request], str] | str | None = None,
    factory: Callable | str | None = None,
) -> None:
    """Add the status, shutdown and proxy routes under ``prefix``, with their views.

    :param prefix: the path the notebooks are served under.  Add these routes
        before any catch-all route of the site (``/{pagename}``), which would
        otherwise take ``{prefix}`` itself.
    :param permission: the permission every notebook view needs, e.g. ``"shell"``.
    :param username: a callable, or its dotted name, that gives the site's name
        for the logged-in user; by default ``request.authenticated_userid``.
    :param factory: a root factory for these routes (a resource with an
        ``__acl__`` that grants ``permission``); the site's own root by default.
    """
    prefix = "/" + prefix.strip("/")
    username_of = config.maybe_dotted(username) if username is not None else authenticated_userid
    factory = config.maybe_dotted(factory)

    def name_of(request: Request) -> str:
        name = username_of(request)
        if not name:
            raise HTTPForbidden("No user is logged in.")
        return name

    def status(request: Request) -> Response:
        return views.notebook_status(request, name_of(request))

    def shutdown(request: Request) -> Response:
        return views.shutdown_notebook(request, name_of(request))

    def proxy(request: Request) -> Response:
        return views.notebook_proxy(request, name_of(request))

    config.action(DISCRIMINATOR, None, introspectables=())
    config.add_route(views.STATUS_ROUTE, prefix + "/" + views.STATUS_PATH, factory=factory)
    config.add_route(views.SHUTDOWN_ROUTE, prefix + "/shutdown", factory=factory)
    config.add_route(views.PROXY_ROUTE, prefix + "/*remainder", factory=factory)
    config.add_view(status, route_name=views.STATUS_ROUTE, permission=permission, request_method="GET")
    config.add_view(shutdown, route_name=views.SHUTDOWN_ROUTE, permission=permission)
    # No Pyramid CSRF token here: the Jupyter front end cannot know it.  The
    # proxy refuses cross-site requests by their Origin instead.
    config.add_view(proxy, route_name=views.PROXY_ROUTE, permission=permission, require_csrf=False)

"""A minimal Pyramid site wired to pyramid_notebook, for tests and benchmarks.

It trusts an ``X-Test-User`` header as the logged-in user: the library's
views are what is under test, not the site's login.  Run it as a real
server with ``python -m tests.support.site PORT SETTINGS_JSON``.
"""

import json
import sys
from contextlib import contextmanager

import webtest
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPForbidden, HTTPFound
from pyramid.response import Response
from pyramid.session import SignedCookieSessionFactory

from pyramid_notebook.admin import notebook_admin
from pyramid_notebook.protocol.context import NotebookContext
from pyramid_notebook.views import launch_notebook, notebook_proxy, shutdown_notebook, stop_on_logout
from tests.support.notebooks import stop_all
from tests.support.servers import development_waitress_options


def username(request) -> str:
    """The test user: the ``X-Test-User`` header, or the ``test_user`` cookie set by ``/as/{name}`` for browsers."""
    name = request.headers.get("X-Test-User") or request.cookies.get("test_user")
    if not name:
        raise HTTPForbidden("No X-Test-User header")
    return name


def as_user(name: str, **headers) -> dict:
    """Request headers that make the test site take ``name`` as the logged-in user."""
    return {"X-Test-User": name, **headers}


def log_in_as(request):
    """For browsers, which cannot send the header: remember the user in a cookie."""
    response = HTTPFound(request.application_url + "/")
    response.set_cookie("test_user", request.matchdict["name"])
    return response


def admin(request):
    """The operators' page, for any logged-in test user."""
    username(request)
    return notebook_admin(request)


def launch(request):
    """Launch with a context made from the query: ``startup`` and ``greeting``, or the site's own bootstrap."""
    context = NotebookContext()
    if request.params.get("bootstrap"):
        settings = request.registry.settings
        context.make_startup(settings["site.config_file"], cwd=settings["site.cwd"])
    if request.params.get("startup"):
        context.add_script(request.params["startup"])
    if request.params.get("greeting"):
        context.add_greeting(request.params["greeting"])
    return launch_notebook(request, username(request), context)


def shutdown(request):
    """The user's shutdown: a confirmation form, then the stop on its POST."""
    return shutdown_notebook(request, username(request))


def logout(request):
    """The site's logout: its own session ends, and so does the user's notebook."""
    stop_on_logout(request, username(request))
    response = HTTPFound(request.application_url + "/")
    response.delete_cookie("test_user")
    return response


def proxy(request):
    """Everything under /notebook/ goes to the user's own notebook."""
    return notebook_proxy(request, username(request))


def main(global_config, **settings):
    """The test site's WSGI application."""
    config = Configurator(settings=settings, session_factory=SignedCookieSessionFactory("test-site-secret"))
    config.include("pyramid_notebook")
    config.add_route("home", "/")
    config.add_view(lambda request: Response("The test site"), route_name="home")
    config.add_route("log_in_as", "/as/{name}")
    config.add_route("admin", "/admin/notebooks")
    config.add_view(log_in_as, route_name="log_in_as")
    config.add_view(admin, route_name="admin")
    config.add_route("launch", "/launch")
    config.add_route("logout", "/logout")
    config.add_view(logout, route_name="logout", request_method="POST")
    config.add_route("shutdown_notebook", "/notebook/shutdown")
    config.add_route("notebook_proxy", "/notebook/*remainder")
    config.add_view(launch, route_name="launch")
    config.add_view(shutdown, route_name="shutdown_notebook")
    config.add_view(proxy, route_name="notebook_proxy")
    return config.make_wsgi_app()


@contextmanager
def site_app(settings: dict):
    """The test site under WebTest; every notebook it started is stopped afterwards."""
    app = webtest.TestApp(main({}, **settings))
    try:
        yield app
    finally:
        stop_all(app.app.registry.notebook_manager)


if __name__ == "__main__":
    import waitress

    port, settings = int(sys.argv[1]), json.loads(sys.argv[2])
    waitress.serve(
        main({}, **settings),
        listen="127.0.0.1:{}".format(port),
        ident="test-site",
        **development_waitress_options(),
    )

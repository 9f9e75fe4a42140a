"""A minimal Pyramid site wired to pyramid_notebook, for tests and benchmarks.

It trusts an ``X-Test-User`` header as the logged-in user: the library's
views are what is under test, not the site's login.  Run it as a real
server with ``python -m tests.site PORT SETTINGS_JSON``.
"""

import json
import sys

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPForbidden, HTTPFound
from pyramid.response import Response
from pyramid.session import SignedCookieSessionFactory

from pyramid_notebook import startup
from pyramid_notebook.admin import notebook_admin
from pyramid_notebook.views import launch_notebook, notebook_proxy, shutdown_notebook, stop_on_logout


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
    response = HTTPFound(request.application_url + "/")
    response.set_cookie("test_user", request.matchdict["name"])
    return response


def admin(request):
    username(request)
    return notebook_admin(request)


def launch(request):
    """Launch with a context made from the query: ``startup`` and ``greeting``, or the site's own bootstrap."""
    nb = {}
    if request.params.get("bootstrap"):
        settings = request.registry.settings
        startup.make_startup(nb, settings["site.config_file"], cwd=settings["site.cwd"])
    if request.params.get("startup"):
        startup.add_script(nb, request.params["startup"])
    if request.params.get("greeting"):
        startup.add_greeting(nb, request.params["greeting"])
    return launch_notebook(request, username(request), nb)


def shutdown(request):
    return shutdown_notebook(request, username(request))


def logout(request):
    """The site's logout: its own session ends, and so does the user's notebook."""
    stop_on_logout(request, username(request))
    response = HTTPFound(request.application_url + "/")
    response.delete_cookie("test_user")
    return response


def proxy(request):
    return notebook_proxy(request, username(request))


def main(global_config, **settings):
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


if __name__ == "__main__":
    import waitress

    port, settings = int(sys.argv[1]), json.loads(sys.argv[2])
    waitress.serve(main({}, **settings), listen="127.0.0.1:{}".format(port), threads=8, ident="test-site")

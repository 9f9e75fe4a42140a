"""A minimal Pyramid site wired to pyramid_notebook, for tests and benchmarks.

It trusts an ``X-Test-User`` header as the logged-in user: the library's
views are what is under test, not the site's login.  Run it as a real
server with ``python -m tests.site PORT SETTINGS_JSON``.
"""

import json
import sys

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPForbidden, HTTPFound

from pyramid_notebook import startup
from pyramid_notebook.views import launch_notebook, notebook_proxy, shutdown_notebook


def username(request) -> str:
    name = request.headers.get("X-Test-User")
    if not name:
        raise HTTPForbidden("No X-Test-User header")
    return name


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
    shutdown_notebook(request, username(request))
    return HTTPFound(request.application_url + "/")


def proxy(request):
    return notebook_proxy(request, username(request))


def main(global_config, **settings):
    config = Configurator(settings=settings)
    config.include("pyramid_notebook")
    config.add_route("launch", "/launch")
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

"""The app's notebook shells: everything it adds to use pyramid_notebook."""
from pyramid.view import view_config

from pyramid_notebook.startup import NotebookContext
from pyramid_notebook.views import launch_notebook
from tests.support.realapp.models import Base, Page
from tests.support.realapp.security import page_factory


def shell_context(request) -> NotebookContext:
    """What every shell holds: the app loaded from its INI file (with pshell's setup) and its models."""
    nb = NotebookContext()
    nb.make_startup(request.registry.settings["realapp.ini"])
    nb.include_sqlalchemy_models(Base)
    return nb


@view_config(route_name="shell", permission="shell")
def shell(request):
    """The site shell, from the page list."""
    return launch_notebook(request, request.identity.name, shell_context(request))


@view_config(route_name="page_shell", permission="shell")
def page_shell(request):
    """A shell on one page: its ``Page`` is ``page`` in the kernel."""
    nb = shell_context(request)
    nb.add_object("page", Page, request.context.page.id)
    return launch_notebook(request, request.identity.name, nb)


def includeme(config):
    """pyramid_notebook's routes and the two launch routes; include it before the catch-all ``/{pagename}``."""
    config.include("pyramid_notebook")
    config.add_notebook_routes(prefix="/notebook", permission="shell", username=lambda request: request.identity.name)
    config.add_route("shell", "/shell")
    config.add_route("page_shell", "/{pagename}/shell", factory=page_factory)
    config.scan(__name__)

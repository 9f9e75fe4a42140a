"""A small Pyramid site that shows pyramid_notebook at work: ``pserve development.ini``.

It has what a real site needs before it can hand out notebook shells: users
who log in, a permission that only some of them have, and data worth
looking at.  The accounts and data are created in SQLite on first start (see
:mod:`.models`); who may open a shell is decided in :mod:`.security`; the
launch points are in :mod:`.views`.
"""
from pyramid.config import Configurator

from pyramid_notebook.demo.views import GLOBAL_CONFIG_KEY


def main(global_config, **settings):
    """The paste app factory (``use = egg:pyramid_notebook#demo``).

    The paste ``global_config`` is kept in the settings because the notebook
    kernels need the INI file's path to load the same site.
    """
    settings[GLOBAL_CONFIG_KEY] = dict(global_config)
    with Configurator(settings=settings) as config:
        config.include("pyramid_jinja2")
        config.include("pyramid_notebook.demo.models")
        config.include("pyramid_notebook.demo.security")
        config.include("pyramid_notebook")

        config.add_route("home", "/")
        config.add_route("login", "/login")
        config.add_route("logout", "/logout")
        config.add_route("item", r"/items/{id:\d+}")
        config.add_route("item_shell", r"/items/{id:\d+}/shell")
        config.add_route("shell1", "/shell1")
        config.add_route("shell2", "/shell2")
        # The status, shutdown and proxy routes under /notebook/, each behind
        # the shell permission, for the user the demo's identity names.
        config.add_notebook_routes(
            prefix="/notebook", permission="shell", username="pyramid_notebook.demo.views.current_username"
        )
        config.add_route("notebook_admin", "/admin/notebooks")
        config.scan("pyramid_notebook.demo.views")
    return config.make_wsgi_app()

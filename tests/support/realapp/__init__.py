"""A small Pyramid app shaped like a real one, with pyramid_notebook added as a site would add it.

It has what the pyramid_notebook manual's integration guide is about: a
catch-all ``/{pagename}`` route, a root factory with ACLs, ``request.dbsession``
under pyramid_tm's explicit transaction manager, an identity that is a
``User`` with ``.name``, SQLite, and a page per ``Page`` row.  Everything it
does for pyramid_notebook is in :mod:`.notebook` plus two marked lines here.
"""
from pyramid.config import Configurator


def main(global_config, **settings):
    """The paste app factory (``use = call:tests.support.realapp:main``)."""
    settings["realapp.ini"] = global_config["__file__"]  # pyramid_notebook: the kernels load the same INI file
    with Configurator(settings=settings) as config:
        config.include(".models")
        config.include(".security")
        config.add_route("home", "/")
        config.add_route("login", "/login")
        config.add_route("logout", "/logout")
        config.include(".notebook")  # pyramid_notebook: before the catch-all route below
        config.add_route("page", "/{pagename}", factory=".security.page_factory")
        config.scan(".views")
    return config.make_wsgi_app()

"""Jupyter Notebook shells inside a Pyramid site.

``config.include("pyramid_notebook")`` reads the ``pyramid_notebook.*``
settings once, checks them, and puts a :class:`NotebookManager` and a pooled
HTTP session for the proxy on the registry.  The site adds its own routes and
views (launch, shutdown, proxy) so that its own login and permissions guard
them; see :mod:`pyramid_notebook.views`.

Nothing is imported at the top of this module: the notebook daemon imports
the package too, and needs neither Pyramid nor requests.
"""


def includeme(config) -> None:
    """Read and check the settings, then make the notebook manager and the proxy's HTTP session.

    A setting that cannot work raises ConfigurationError naming it, so the
    site does not start rather than failing on a user's first launch.
    """
    from pyramid_notebook.proxy import make_upstream_session
    from pyramid_notebook.settings import make_manager, parse_settings

    notebook_settings = parse_settings(config.get_settings())
    registry = config.registry
    registry.notebook_settings = notebook_settings
    registry.notebook_manager = make_manager(notebook_settings)
    registry.notebook_upstream_session = make_upstream_session()

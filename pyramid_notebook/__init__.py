"""Jupyter Notebook shells inside a Pyramid site.

``config.include("pyramid_notebook")`` reads the ``pyramid_notebook.*``
settings once, checks them, puts on the registry a
:class:`~pyramid_notebook.manager.NotebookManager` and the proxy's
connection pools and per-user request limiter, and adds the
``config.add_notebook_routes()`` directive (:mod:`pyramid_notebook.routes`).
The site keeps its own launch views, behind its own login and permissions;
see :mod:`pyramid_notebook.views`.

The package layout follows the architecture (``docs/architecture.rst``):
the web side at the top and in :mod:`pyramid_notebook.manager`, the
notebook side in :mod:`pyramid_notebook.server`, what the two share in
:mod:`pyramid_notebook.protocol`, the uWSGI websocket relay in
:mod:`pyramid_notebook.websocket`, and the demo site in
:mod:`pyramid_notebook.demo`.

Nothing is imported at the top of this module: the notebook daemon imports
the package too, and needs neither Pyramid nor urllib3.
"""


#: Configuration actions run by ascending order; the site's own have order 0.
CHECK_ORDER = 100


def check_csrf_storage(registry) -> None:
    """Refuse to start without somewhere to keep CSRF tokens.

    The shutdown and confirmation forms carry Pyramid's CSRF token, which
    by default lives in the session: without a session factory (or another
    CSRF storage policy) the first such form would fail with a bare 500.
    """
    from pyramid.csrf import LegacySessionCSRFStoragePolicy
    from pyramid.exceptions import ConfigurationError
    from pyramid.interfaces import ICSRFStoragePolicy, ISessionFactory

    policy = registry.queryUtility(ICSRFStoragePolicy)
    if isinstance(policy, LegacySessionCSRFStoragePolicy) and registry.queryUtility(ISessionFactory) is None:
        raise ConfigurationError(
            "pyramid_notebook needs a session factory (config.set_session_factory) or a CSRF storage policy "
            "(config.set_csrf_storage_policy): its shutdown and confirmation forms carry Pyramid's CSRF token"
        )


def includeme(config) -> None:
    """Read and check the settings, make the manager and the proxy's state, and add the directive.

    A setting that cannot work raises ConfigurationError naming it, so the
    site does not start rather than failing on a user's first launch.
    """
    from pyramid_notebook.limits import RequestLimiter
    from pyramid_notebook.proxy import UpstreamPools
    from pyramid_notebook.routes import add_notebook_routes
    from pyramid_notebook.settings import check_page_renderer, make_manager, parse_settings

    notebook_settings = parse_settings(config.get_settings())
    registry = config.registry
    registry.notebook_settings = notebook_settings
    registry.notebook_manager = make_manager(notebook_settings)
    registry.notebook_upstream_pools = UpstreamPools()
    registry.notebook_request_limiter = RequestLimiter()
    config.add_directive("add_notebook_routes", add_notebook_routes)
    # Late in the commit, once the site has set its session factory and renderers wherever it does.
    config.action(("pyramid_notebook", "csrf storage"), lambda: check_csrf_storage(registry), order=CHECK_ORDER)
    config.action(
        ("pyramid_notebook", "page renderer"),
        lambda: check_page_renderer(notebook_settings, registry),
        order=CHECK_ORDER,
    )

"""A WSGI filter for uWSGI's ``http-socket``: every response says ``Connection: close``.

uWSGI's ``http-socket`` closes each connection after its response without
saying so.  A client that reuses connections (``requests.Session``, API
scripts, monitoring, load balancers) then sends its next request into the
closed socket and meets a reset.  ``http11-socket`` would keep connections
open instead, but each idle one holds a worker thread; uWSGI's own
``add-header`` would also mark the websocket handshake (``101``), whose
``Connection: Upgrade`` must stand alone.  So the header is added here, to
every response but the handshake.  The shipped ``uwsgi.ini`` puts it in the
pipeline::

    [filter:connection-close]
    use = call:pyramid_notebook.connection_close:filter_factory
"""
from collections.abc import Callable, Iterable


def close_connections(app: Callable) -> Callable:
    """Wrap the WSGI ``app`` so that its responses, but a ``101``, carry ``Connection: close``."""

    def app_closing_connections(environ: dict, start_response: Callable) -> Iterable[bytes]:
        def start_closing(status: str, headers: list, exc_info=None):
            if not status.startswith("101"):
                headers = [(name, value) for name, value in headers if name.lower() != "connection"]
                headers.append(("Connection", "close"))
            return start_response(status, headers, exc_info)

        return app(environ, start_closing)

    return app_closing_connections


def filter_factory(global_config: dict, **local_config) -> Callable:
    """The PasteDeploy filter factory (``use = call:pyramid_notebook.connection_close:filter_factory``)."""
    return close_connections

"""The stable public name of the websocket proxy for sites that run under uWSGI.

Enable it with::

    pyramid_notebook.websocket_proxy = pyramid_notebook.uwsgi.serve_websocket

and run the site under uWSGI (see the top-level ``uwsgi.ini``).  Settings and
INI files name it here, so this name stays while the code behind it lives in
:mod:`pyramid_notebook.websocket` (frames, relay, and the uWSGI adaptor in
:mod:`pyramid_notebook.websocket.uwsgi`, whose docstring says how it works).
"""
from pyramid_notebook.websocket.uwsgi import serve_websocket

__all__ = ["serve_websocket"]

"""Websockets of the notebook carried through the site, in three layers, each testable on its own.

* :mod:`~pyramid_notebook.websocket.frames`: websocket frames as bytes (no I/O);
* :mod:`~pyramid_notebook.websocket.relay`: the relay loop between two sockets;
* :mod:`~pyramid_notebook.websocket.uwsgi`: the adaptor that runs the relay on
  a uWSGI worker's connection.

Sites name the adaptor by its stable public name,
``pyramid_notebook.uwsgi.serve_websocket``.  Importing this package needs
neither uWSGI nor websocket-client.
"""

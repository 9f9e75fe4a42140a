"""The uWSGI adaptor: turn a checked websocket request into a relay on the worker's connection.

Everything that knows about uWSGI is here (its module, its options, its
connection descriptor, how it wants a handshake written), so that the frames
and the relay stay testable without it.  ``uwsgi`` is imported only when a
websocket is served: the package imports without uWSGI installed.  The site
names :func:`serve_websocket` by its stable public name,
``pyramid_notebook.uwsgi.serve_websocket``.

:func:`serve_websocket` is called by the site's proxy view once the site has
checked the user's permission and the request's Origin.  It only checks the
request and returns a :class:`WebsocketProxyResponse`; the work happens when
uWSGI calls that response, after Pyramid's tweens have finished.  That way no
database transaction, session or connection from the pool stays open for the
hours a notebook tab may stay open.

When called, the response

1. opens the websocket to the notebook first (websocket-client), with the
   notebook's token in an ``Authorization`` header, the subprotocols the
   browser offered, and ``Host: 127.0.0.1:<port>``.  The browser's Host,
   Origin and cookies are not passed on.  If the notebook refuses, the
   browser gets an HTTP error instead of a websocket;
2. completes the browser's handshake with exactly the subprotocol the
   notebook chose (Jupyter picks ``v1.kernel.websocket.jupyter.org`` when it
   is offered), or with none when it chose none;
3. relays the websocket *frames* between the browser's connection
   (``uwsgi.connection_fd()``) and the notebook's socket
   (:mod:`pyramid_notebook.websocket.relay`).

The handshake is written with WSGI's ``start_response("101 ...")`` rather
than ``uwsgi.websocket_handshake()``, because the latter echoes the browser's
whole ``Sec-WebSocket-Protocol`` header whenever the notebook chose none,
which would announce a protocol the notebook does not speak.

Limits, from the uWSGI options (``uwsgi.opt``):

* ``websockets-max-size`` (KiB, uWSGI's default 1024): the largest frame
  accepted from the browser.  A larger one closes the websocket with 1009.
* ``websockets-ping-freq`` (seconds, default 30): when the browser has sent
  nothing for that long the proxy pings it itself (and swallows the pong), so
  that idle websockets carry traffic through nginx and NAT, and a browser that
  vanished without closing its TCP connection is noticed;
* ``websockets-pong-tolerance`` (seconds, default 3): how long such a ping may
  go unanswered before the websocket is given up and the thread freed.

TLS must end in front of the worker (nginx, or uWSGI's ``https`` router):
the relay reads and writes the worker's socket itself, so an ``https-socket``
in the worker is refused with a 501 and a log line.

Each open websocket holds one uWSGI worker thread (or core) for as long as
it is open.  The notebook's token never appears in a URL, a log line or an
exception message.
"""
import base64
import hashlib
import logging
import os
import socket
import time
from http import HTTPStatus

import websocket
from pyramid.httpexceptions import HTTPBadRequest, HTTPClientError, HTTPNotImplemented
from pyramid.request import Request
from pyramid.response import Response

from pyramid_notebook.origin import is_websocket_upgrade
from pyramid_notebook.websocket.relay import UPSTREAM_MAX_FRAME, Relay, Side

logger = logging.getLogger(__name__)

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: Seconds to wait for the notebook to accept the websocket.
CONNECT_TIMEOUT = 30.0

#: uWSGI's defaults for the options the relay honours.
DEFAULT_MAX_SIZE_KB = 1024
DEFAULT_PING_FREQ = 30
DEFAULT_PONG_TOLERANCE = 3

#: uWSGI options that put TLS inside the worker, where the relay cannot follow.
TLS_SOCKET_OPTIONS = ("https-socket", "ssl-socket")


def _uwsgi_option(uwsgi_module, name: str, default: int) -> int:
    """A numeric uWSGI option as the server was started with it (the last one given wins)."""
    value = uwsgi_module.opt.get(name)
    if isinstance(value, list):
        value = value[-1] if value else None
    if value in (None, b"", "", True):
        return default
    try:
        return int(value.decode() if isinstance(value, bytes) else value)
    except ValueError:
        logger.warning("uWSGI option %s=%r is not a number; using %d", name, value, default)
        return default


def _offered_protocols(request: Request) -> list[str]:
    """The subprotocols the browser offered, in its order of preference."""
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    return [name.strip() for name in header.split(",") if name.strip()]


def _plain_response(start_response, status: str, text: str, extra_headers=()) -> list[bytes]:
    body = text.encode("utf-8")
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *extra_headers]
    start_response(status, headers)
    return [body]


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for the browser's ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1((key + WEBSOCKET_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


class HTTPUpgradeRequired(HTTPClientError):
    """426: the browser must speak another version of the websocket protocol (Pyramid has no class for it)."""

    code = 426
    title = "Upgrade Required"
    explanation = "This resource needs a different protocol version."


class WebsocketProxyResponse(Response):
    """A response that, when the WSGI server calls it, becomes the websocket relay.

    Pyramid's tweens (and so any database transaction) have finished by then.
    Its WSGI call writes nothing after the websocket ends, as uWSGI expects.
    ``Set-Cookie`` headers that the site added on the way out are sent with the
    101 handshake; other headers belong to ordinary responses and are dropped.
    """

    def __init__(self, upstream_url: str, token: str, protocols: list[str], key: str, path: str):
        super().__init__(status=101)
        self.upstream_url = upstream_url
        self.token = token
        self.protocols = protocols
        self.key = key
        self.log_path = path

    def __repr__(self):
        # The default repr would show the token.
        return "<WebsocketProxyResponse for {}>".format(self.log_path)

    def open_upstream(self) -> websocket.WebSocket:
        """Open the notebook's websocket with the token, offering what the browser offered."""
        header = ["Authorization: token " + self.token]
        if self.protocols:
            # Passed as a plain header, not as websocket-client's
            # ``subprotocols``, which refuses a server that chooses none.
            header.append("Sec-WebSocket-Protocol: " + ", ".join(self.protocols))
        return websocket.create_connection(
            self.upstream_url,
            header=header,
            suppress_origin=True,
            # A redirect from the notebook (to its login page, say) is a failure, not a place to go.
            redirect_limit=0,
            timeout=CONNECT_TIMEOUT,
            enable_multithread=False,
            skip_utf8_validation=True,
        )

    def __call__(self, environ, start_response):
        """Open the notebook's websocket, answer the browser's handshake, and relay until the websocket ends."""
        import uwsgi

        started = time.monotonic()
        try:
            upstream = self.open_upstream()
        except websocket.WebSocketBadStatusException as error:
            logger.warning("Websocket %s: the notebook answered %s", self.log_path, error.status_code)
            # Its own 4xx (say, 404 for a kernel that is gone) is the browser's
            # business; a refused token or a server error is the site's fault.
            if 400 <= error.status_code < 500 and error.status_code not in (401, 403, 407):
                try:
                    status = "{} {}".format(error.status_code, HTTPStatus(error.status_code).phrase)
                except ValueError:
                    status = "{} Refused".format(error.status_code)
                return _plain_response(start_response, status, "Refused by the notebook.")
            return _plain_response(start_response, "502 Bad Gateway", "The notebook refused the websocket.")
        except (OSError, websocket.WebSocketException) as error:
            logger.warning("Websocket %s: cannot reach the notebook: %s", self.log_path, type(error).__name__)
            return _plain_response(start_response, "502 Bad Gateway", "The notebook server does not answer.")

        upstream_sock = upstream.sock
        browser_sock = None
        try:
            chosen = (upstream.getheaders() or {}).get("sec-websocket-protocol")
            if chosen is not None and chosen not in self.protocols:
                logger.warning("Websocket %s: the notebook chose a subprotocol nobody offered", self.log_path)
                return _plain_response(start_response, "502 Bad Gateway", "Bad subprotocol from the notebook.")
            headers = [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", accept_key(self.key)),
            ]
            if chosen:
                headers.append(("Sec-WebSocket-Protocol", chosen))
            headers += [(name, value) for name, value in self.headerlist if name.lower() == "set-cookie"]
            write = start_response("101 Switching Protocols", headers)
            # An empty write makes uWSGI send the headers now.
            write(b"")

            # A duplicate of the worker's descriptor: closing it leaves uWSGI's own alone.
            browser_sock = socket.socket(fileno=os.dup(uwsgi.connection_fd()))
            max_size = _uwsgi_option(uwsgi, "websockets-max-size", DEFAULT_MAX_SIZE_KB) * 1024
            browser = Side("browser", browser_sock, peer_masks=True, we_mask=False, max_payload=max_size)
            notebook = Side("notebook", upstream_sock, peer_masks=False, we_mask=True, max_payload=UPSTREAM_MAX_FRAME)
            relay = Relay(
                browser,
                notebook,
                ping_freq=_uwsgi_option(uwsgi, "websockets-ping-freq", DEFAULT_PING_FREQ),
                pong_tolerance=_uwsgi_option(uwsgi, "websockets-pong-tolerance", DEFAULT_PONG_TOLERANCE),
                path=self.log_path,
            )
            logger.debug("Websocket %s open (subprotocol %s)", self.log_path, chosen)
            relay.run()
            logger.debug(
                "Websocket %s ended after %.1f s: %s", self.log_path, time.monotonic() - started, relay.outcome
            )
        except OSError as error:
            # The browser left while its handshake was being written.
            logger.debug("Websocket %s: browser connection failed: %s", self.log_path, type(error).__name__)
        finally:
            if browser_sock is not None:
                browser_sock.close()
            upstream.shutdown()
        return []


def serve_websocket(request: Request, port: int, token: str) -> Response:
    """Proxy this websocket request to the notebook at 127.0.0.1:``port`` under uWSGI.

    The caller has checked the user's permission and the request's Origin.
    The notebook's URL path is the request's own (the site's ``/notebook/...``
    is the notebook's ``base_url``); ``token`` authenticates to the notebook.
    Returns a response that runs the relay when uWSGI calls it; raises an
    HTTP error (``pyramid.httpexceptions``, so that the site's exception views
    can style it) for a request that cannot become a websocket here.
    """
    try:
        import uwsgi
    except ImportError:
        logger.error("pyramid_notebook.uwsgi.serve_websocket works only when the site runs under uWSGI")
        raise HTTPNotImplemented("Websockets need uWSGI on this site.") from None
    if any(name in uwsgi.opt for name in TLS_SOCKET_OPTIONS):
        logger.error(
            "pyramid_notebook.uwsgi.serve_websocket cannot relay on a TLS socket of the worker (%s): "
            "end TLS in nginx or uWSGI's https router instead",
            ", ".join(name for name in TLS_SOCKET_OPTIONS if name in uwsgi.opt),
        )
        raise HTTPNotImplemented("Websockets are not available on this socket.")
    key = request.headers.get("Sec-WebSocket-Key", "").strip()
    if request.method != "GET" or not is_websocket_upgrade(request) or not key:
        raise HTTPBadRequest("Not a websocket handshake.")
    if request.headers.get("Sec-WebSocket-Version", "").strip() != "13":
        raise HTTPUpgradeRequired("Websocket version 13 is needed.", headers={"Sec-WebSocket-Version": "13"})
    upstream_url = "ws://127.0.0.1:{}{}".format(int(port), request.path_qs)
    return WebsocketProxyResponse(upstream_url, token, _offered_protocols(request), key, request.path)

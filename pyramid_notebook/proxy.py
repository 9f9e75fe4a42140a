"""Reverse-proxy one HTTP request to a user's notebook server on 127.0.0.1.

Both directions stream: the request body is read from the WSGI input as the
upstream connection sends it, and the response body is handed to the WSGI
server chunk by chunk, still compressed if the notebook compressed it.  The
notebook sees only what it needs: the method, path, query, body and content
headers, and the notebook's own token.  The browser's ``Host`` (Jupyter
refuses a foreign one), the site's cookies and credentials stay behind.

One user must not starve the site of its threads, each of which a proxied
request holds until its body is sent: over ``max_user_requests`` requests in
flight the answer is 503 (see :mod:`pyramid_notebook.limits`).  And a
notebook that sends nothing for ``upstream_timeout`` seconds (frozen, or
stopped with SIGSTOP) gets 504, or has its half-sent answer cut off, rather
than hold the thread.
"""
import logging
import re
import threading
from collections.abc import Iterator

import urllib3
from pyramid.httpexceptions import HTTPBadGateway, HTTPGatewayTimeout, HTTPServiceUnavailable
from pyramid.request import Request
from pyramid.response import Response
from urllib3.exceptions import ReadTimeoutError
from urllib3.response import BaseHTTPResponse

from pyramid_notebook.limits import RequestSlot

logger = logging.getLogger(__name__)

#: Headers that describe one connection, not the message (RFC 9110, 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

#: Request headers that must not reach the notebook.
DROPPED_REQUEST_HEADERS = HOP_BY_HOP | {
    "host",
    "cookie",
    "authorization",
    "content-length",
    "origin",
    "referer",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
}

#: Response headers that must not reach the browser.  The notebook's cookies
#: (its XSRF and login cookies) are of no use behind a token-authenticating
#: proxy, and would be sent back to every notebook on 127.0.0.1.
DROPPED_RESPONSE_HEADERS = HOP_BY_HOP | {"set-cookie"}

#: Bytes read from the notebook and handed to the WSGI server at a time.
#: Each piece costs the WSGI server a round of its own work: at 64 KiB the
#: web process spent more CPU on a 100 MB download than the notebook
#: serving it; at 1 MiB waitress spends 0.035 s per 100 MB, against 0.06 s
#: at 256 KiB.  (Waitress must then keep its output watermark plus one piece
#: in memory, not in a temporary file: see ``outbuf_overflow`` in development.ini.)
CHUNK_SIZE = 1024 * 1024

#: Requests sent to the notebook again when a kept-alive connection turns out to be closed.
RESENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: Seconds a browser refused for too many requests is told to wait (Retry-After).
RETRY_AFTER_SECONDS = 5

#: Notebook application pages (not user files) that may carry the site's banner.
PAGE_PATH = re.compile(r"(tree|notebooks|edit|consoles|terminals)(/|$)")


class UpstreamPools:
    """One pool of kept-alive connections per notebook port, made on first use.

    urllib3 directly, not requests: the proxy needs none of what requests
    adds (cookies, redirects, proxies from the environment, content
    decoding), and that layer cost about a quarter of the proxy's CPU time
    on a small request.  A notebook on a port is one user's server, so
    nothing is shared between ports; a pool lets extra connections be made
    beyond its size and drops them after use rather than blocking.
    """

    def __init__(self, connections_per_notebook: int = 8):
        self.connections_per_notebook = connections_per_notebook
        self._pools: dict[int, urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def pool(self, port: int) -> urllib3.HTTPConnectionPool:
        pool = self._pools.get(port)
        if pool is None:
            with self._lock:
                pool = self._pools.get(port)
                if pool is None:
                    pool = self._pools[port] = urllib3.HTTPConnectionPool(
                        "127.0.0.1", port, maxsize=self.connections_per_notebook, block=False, retries=False
                    )
        return pool


def upstream_headers(request: Request, token: str) -> dict:
    """The browser's request headers as the notebook should see them."""
    headers = {name: value for name, value in request.headers.items() if name.lower() not in DROPPED_REQUEST_HEADERS}
    headers["Authorization"] = "token " + token
    return headers


def request_body(request: Request):
    """What to send upstream as the body: the WSGI input itself when its length is known, so it streams."""
    if not request.is_body_readable:
        return None
    if request.content_length is not None:
        return request.body_file
    return request.body


class UpstreamStalled(Exception):
    """The notebook stopped sending in the middle of an answer.

    Raised out of the response body so that the WSGI server drops the
    connection: ending the body quietly would make a cut-off chunked
    download look complete to the browser.
    """


class StreamedBody:
    """The upstream body as a WSGI ``app_iter``: raw (still compressed), as it arrives.

    The request's slot is given back when the WSGI server closes the body,
    once it is sent or the browser has gone, not when the view returns.
    """

    def __init__(self, upstream: BaseHTTPResponse, slot: RequestSlot, port: int, path: str, timeout: float):
        self.upstream = upstream
        self.slot = slot
        self.port = port
        self.path = path
        self.timeout = timeout

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.upstream.stream(CHUNK_SIZE, decode_content=False)
        except ReadTimeoutError:
            logger.warning(
                "Notebook on port %d sent nothing for %g s in the middle of %s: answer cut off",
                self.port,
                self.timeout,
                self.path,
            )
            raise UpstreamStalled(
                "the notebook on port {} sent nothing for {:g} s".format(self.port, self.timeout)
            ) from None

    def close(self) -> None:
        """Give the upstream connection back to its pool (or drop it, if the body was not all read) and the slot."""
        try:
            release_or_close(self.upstream)
        finally:
            self.slot.release()


def release_or_close(upstream: BaseHTTPResponse) -> None:
    """Keep the connection for the next request if its answer was read to the end; else close it.

    A connection with part of an answer still unread would hand that rest to
    the next request as its own answer.
    """
    if upstream.closed:
        upstream.release_conn()
    else:
        upstream.close()


def response_headers(upstream: BaseHTTPResponse, upstream_origin: str) -> list[tuple[str, str]]:
    """The notebook's response headers as the browser should see them."""
    headers = []
    for name, value in upstream.headers.items():
        lower = name.lower()
        if lower in DROPPED_RESPONSE_HEADERS:
            continue
        if lower == "location" and value.startswith(upstream_origin):
            # Keep redirects on the site: the path is the same on both sides.
            value = value[len(upstream_origin) :] or "/"
        headers.append((name, value))
    return headers


def with_banner(upstream: BaseHTTPResponse, headers: list, banner: str) -> Response:
    """Return an HTML page with ``banner`` added before ``</body>``.

    The page is read whole (and decompressed): notebook application pages
    are a few kilobytes.  A notebook that stops sending in the middle
    raises urllib3's ``ReadTimeoutError``.
    """
    try:
        page = upstream.read(decode_content=True)
        upstream.release_conn()
    except BaseException:
        upstream.close()
        raise
    marker = page.rfind(b"</body>")
    if marker >= 0:
        page = page[:marker] + banner.encode("utf-8") + page[marker:]
    headers = [(name, value) for name, value in headers if name.lower() not in ("content-length", "content-encoding")]
    return Response(status=upstream.status, headerlist=headers, body=page)


def too_many_requests(request: Request, port: int, limit: int) -> Response:
    """503 for a request over the user's cap: the browser may try again later."""
    logger.warning(
        "Refused %s %s: the notebook on port %d has %d requests in flight already (max_user_requests)",
        request.method,
        request.path,
        port,
        limit,
    )
    body = {
        "error": "too_many_requests",
        "message": "{} of your requests to your notebook are in progress, the most this site allows at once. "
        "Try again when one of them has finished.".format(limit),
    }
    return HTTPServiceUnavailable(json_body=body, cache_control="no-store", retry_after=RETRY_AFTER_SECONDS)


def notebook_timed_out(request: Request, port: int, timeout: float) -> Response:
    """504 for a notebook that took the request but sent no answer in time."""
    logger.warning("Notebook on port %d sent nothing for %g s to %s %s", port, timeout, request.method, request.path)
    body = {
        "error": "notebook_timeout",
        "message": "The notebook sent no answer within {:g} seconds: it may be frozen or overloaded. "
        "If it stays so, stop it and launch it again from the site.".format(timeout),
    }
    return HTTPGatewayTimeout(json_body=body, cache_control="no-store")


def send_upstream(
    pool: urllib3.HTTPConnectionPool, method: str, path: str, body, headers: dict, timeout: float
) -> BaseHTTPResponse:
    """Send one request to the notebook and return its answer, the body still to read.

    A kept-alive connection can be closed by the notebook just as a request
    goes out on it (the old server on a port a new one now has, or an idle
    connection ended); the request then meets a closed connection before
    any answer.  A request that cannot change anything (no body, a safe
    method) is sent once more, on a new connection, as browsers do.
    """

    def send() -> BaseHTTPResponse:
        return pool.urlopen(
            method,
            path,
            body=body,
            headers=headers,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
            decode_content=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
        )

    try:
        return send()
    except urllib3.exceptions.ProtocolError:
        if body is not None or method not in RESENT_METHODS:
            raise
        logger.info(
            "Notebook on port %d closed the connection before answering %s %s: sent again", pool.port, method, path
        )
    return send()


def forward(
    request: Request,
    pool: urllib3.HTTPConnectionPool,
    token: str,
    remainder: str,
    banner: str | None,
    timeout: float,
    slot: RequestSlot,
) -> Response:
    """Send ``request`` to the notebook and turn its answer into the browser's.

    ``timeout`` bounds the wait to connect and for each chunk of the answer,
    however long the whole answer takes.  A streamed answer takes ``slot``
    with it; for any other answer the caller releases it.
    """
    port = pool.port
    headers = upstream_headers(request, token)
    body = request_body(request)
    if request.content_length is not None and body is not None:
        headers["Content-Length"] = str(request.content_length)
    try:
        upstream = send_upstream(pool, request.method, request.path_qs, body, headers, timeout)
    except urllib3.exceptions.TimeoutError:
        return notebook_timed_out(request, port, timeout)
    except urllib3.exceptions.HTTPError as error:
        logger.warning("Notebook on port %d did not answer %s %s: %s", port, request.method, request.path, type(error))
        raise HTTPBadGateway(
            "The notebook server did not answer. It may have stopped; launch it again from the site."
        ) from None
    headers = response_headers(upstream, "http://127.0.0.1:{}".format(port))
    content_type = upstream.headers.get("Content-Type", "")
    if banner and content_type.startswith("text/html") and PAGE_PATH.match(remainder):
        try:
            return with_banner(upstream, headers, banner)
        except urllib3.exceptions.TimeoutError:
            return notebook_timed_out(request, port, timeout)
    if request.method == "HEAD" or upstream.status in (204, 304):
        release_or_close(upstream)
        return Response(status=upstream.status, headerlist=headers)
    streamed = StreamedBody(upstream, slot, port, request.path, timeout)
    return Response(status=upstream.status, headerlist=headers, app_iter=streamed)


def proxy_request(
    request: Request,
    port: int,
    token: str,
    pools: UpstreamPools,
    remainder: str = "",
    banner: str | None = None,
) -> Response:
    """Forward ``request`` to the notebook on ``127.0.0.1:port`` and return its answer.

    The path is forwarded unchanged: the notebook's base URL is the path the
    site serves it under.  ``remainder`` is that path below the base URL; a
    notebook application page found there gets ``banner`` (HTML) added.
    Over ``max_user_requests`` requests in flight to this notebook the
    answer is 503 (see :class:`~pyramid_notebook.limits.RequestLimiter`).  An unreachable notebook gives 502; one that
    sends nothing for ``upstream_timeout`` seconds gives 504, or has its
    answer cut off if it stalls in the middle.
    """
    settings = request.registry.notebook_settings
    slot = request.registry.notebook_request_limiter.acquire(port, settings.max_user_requests)
    if slot is None:
        return too_many_requests(request, port, settings.max_user_requests)
    response = None
    try:
        response = forward(request, pools.pool(port), token, remainder, banner, settings.upstream_timeout, slot)
        return response
    finally:
        if response is None or not isinstance(response.app_iter, StreamedBody):
            slot.release()

"""Reverse-proxy one HTTP request to a user's notebook server on 127.0.0.1.

Both directions stream: the request body is read from the WSGI input as the
upstream connection sends it, and the response body is handed to the WSGI
server chunk by chunk, still compressed if the notebook compressed it.  The
notebook sees only what it needs: the method, path, query, body and content
headers, and the notebook's own token.  The browser's ``Host`` (Jupyter
refuses a foreign one), the site's cookies and credentials stay behind.

One user must not starve the site of its threads, each of which a proxied
request holds until its body is sent.  So each web process lets a user's
notebook have at most ``max_user_requests`` requests in flight; once these
stop finishing (stalled downloads, a frozen notebook), more are refused with
503 at once (see :class:`RequestLimiter`).  And a notebook that sends nothing
for ``upstream_timeout`` seconds (frozen, or stopped with SIGSTOP) gets 504,
or has its half-sent answer cut off, rather than hold the thread.
"""
import logging
import re
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from http import cookiejar

import requests
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response
from urllib3.exceptions import ReadTimeoutError

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

CHUNK_SIZE = 64 * 1024

#: Seconds a browser refused for too many requests is told to wait (Retry-After).
RETRY_AFTER_SECONDS = 5

#: Once all of a user's slots have been held this long without one coming
#: free, more requests are refused at once (see RequestLimiter).
QUEUE_SECONDS = 3.0
#: The longest a request waits for a slot.
MAX_QUEUE_SECONDS = 10.0

#: Notebook application pages (not user files) that may carry the site's banner.
PAGE_PATH = re.compile(r"(tree|notebooks|edit|consoles|terminals)(/|$)")


class _RefuseAllCookies(cookiejar.DefaultCookiePolicy):
    """A policy that neither stores nor sends cookies."""

    def set_ok(self, cookie, request):
        return False

    def return_ok(self, cookie, request):
        return False


def make_upstream_session() -> requests.Session:
    """A connection-pooling HTTP session for talking to the notebooks.

    It keeps no cookies (each user's notebook is a different server on the
    same host) and ignores proxy settings from the environment (the
    notebooks are on localhost).
    """
    session = requests.Session()
    session.trust_env = False
    session.cookies.set_policy(_RefuseAllCookies())
    adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=32, max_retries=0)
    session.mount("http://", adapter)
    return session


class RequestBody:
    """The WSGI input as a file with a known length, so requests sends Content-Length.

    requests looks for a ``len`` attribute; without it, it would either read
    the whole body into memory or switch to chunked encoding.
    """

    def __init__(self, stream, length: int):
        self.stream = stream
        self.len = length

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(CHUNK_SIZE if size is None or size < 0 else size)


def upstream_headers(request: Request, token: str) -> dict:
    """The browser's request headers as the notebook should see them."""
    headers = {name: value for name, value in request.headers.items() if name.lower() not in DROPPED_REQUEST_HEADERS}
    headers["Authorization"] = "token " + token
    return headers


def request_body(request: Request):
    """What to send upstream as the body: a stream when its length is known."""
    if not request.is_body_readable:
        return None
    if request.content_length is not None:
        return RequestBody(request.body_file, request.content_length)
    return request.body


@dataclass
class NotebookRequests:
    """The requests one notebook has in flight from this process, and those waiting for a slot."""

    in_flight: int = 0
    waiting: int = 0
    #: When a slot was last taken or given back (time.monotonic).
    moved_at: float = 0.0


class RequestLimiter:
    """The HTTP requests in flight to each notebook from this web process, capped per notebook.

    A notebook belongs to one user, so its port stands for the user.  The
    count is per process: each process has its own threads to protect.

    A browser loads a notebook page with a burst of parallel requests (six
    at once over HTTP/1.1, dozens over HTTP/2), each done in milliseconds,
    so a request over the cap waits for a slot while the user's requests
    keep finishing.  Once all of the user's slots have been held for
    :data:`QUEUE_SECONDS` without one coming free (stalled downloads, a
    frozen notebook), requests over the cap are refused at once, holding no
    thread; none waits longer than :data:`MAX_QUEUE_SECONDS`.
    """

    def __init__(self):
        self._changed = threading.Condition()
        self._notebooks: dict[int, NotebookRequests] = {}

    def acquire(self, port: int, limit: int) -> "RequestSlot | None":
        """One of the ``limit`` slots of the notebook on ``port``, or ``None`` when none comes free in time."""
        arrived = time.monotonic()
        with self._changed:
            notebook = self._notebooks.setdefault(port, NotebookRequests())
            notebook.waiting += 1
            try:
                while notebook.in_flight >= limit:
                    now = time.monotonic()
                    deadline = min(notebook.moved_at + QUEUE_SECONDS, arrived + MAX_QUEUE_SECONDS)
                    if now >= deadline:
                        return None
                    self._changed.wait(deadline - now)
                notebook.in_flight += 1
                notebook.moved_at = time.monotonic()
                return RequestSlot(self, port)
            finally:
                notebook.waiting -= 1
                self._forget_if_idle(port, notebook)

    def _release(self, port: int) -> None:
        with self._changed:
            notebook = self._notebooks[port]
            notebook.in_flight -= 1
            notebook.moved_at = time.monotonic()
            self._forget_if_idle(port, notebook)
            self._changed.notify_all()

    def _forget_if_idle(self, port: int, notebook: NotebookRequests) -> None:
        if not notebook.in_flight and not notebook.waiting:
            del self._notebooks[port]


class RequestSlot:
    """One request's place in its notebook's count; given back once, at the latest when collected."""

    def __init__(self, limiter: RequestLimiter, port: int):
        self._release = weakref.finalize(self, limiter._release, port)

    def release(self) -> None:
        """Give the place back; calling again does nothing."""
        self._release()


_LIMITER_LOCK = threading.Lock()


def request_limiter(registry: Registry) -> RequestLimiter:
    """The site's :class:`RequestLimiter`, made on first use and kept on the registry."""
    with _LIMITER_LOCK:
        limiter = getattr(registry, "notebook_request_limiter", None)
        if limiter is None:
            limiter = registry.notebook_request_limiter = RequestLimiter()
        return limiter


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

    def __init__(self, upstream: requests.Response, slot: RequestSlot, port: int, path: str, timeout: float):
        self.upstream = upstream
        self.slot = slot
        self.port = port
        self.path = path
        self.timeout = timeout

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.upstream.raw.stream(CHUNK_SIZE, decode_content=False)
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
        """Close the upstream connection and give back the request's slot."""
        try:
            self.upstream.close()
        finally:
            self.slot.release()


def response_headers(upstream: requests.Response, upstream_origin: str) -> list[tuple[str, str]]:
    """The notebook's response headers as the browser should see them."""
    headers = []
    for name, value in upstream.raw.headers.items():
        lower = name.lower()
        if lower in DROPPED_RESPONSE_HEADERS:
            continue
        if lower == "location" and value.startswith(upstream_origin):
            # Keep redirects on the site: the path is the same on both sides.
            value = value[len(upstream_origin) :] or "/"
        headers.append((name, value))
    return headers


def with_banner(upstream: requests.Response, headers: list, banner: str) -> Response:
    """Return an HTML page with ``banner`` added before ``</body>``.

    The page is read whole (and decompressed): notebook application pages
    are a few kilobytes.  A notebook that stops sending in the middle
    raises ``requests.ConnectionError`` wrapping urllib3's ``ReadTimeoutError``.
    """
    try:
        page = upstream.content
    finally:
        upstream.close()
    marker = page.rfind(b"</body>")
    if marker >= 0:
        page = page[:marker] + banner.encode("utf-8") + page[marker:]
    headers = [(name, value) for name, value in headers if name.lower() not in ("content-length", "content-encoding")]
    return Response(status=upstream.status_code, headerlist=headers, body=page)


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
    response = Response(status=503, json_body=body, cache_control="no-store")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def notebook_timed_out(request: Request, port: int, timeout: float) -> Response:
    """504 for a notebook that took the request but sent no answer in time."""
    logger.warning("Notebook on port %d sent nothing for %g s to %s %s", port, timeout, request.method, request.path)
    body = {
        "error": "notebook_timeout",
        "message": "The notebook sent no answer within {:g} seconds: it may be frozen or overloaded. "
        "If it stays so, stop it and launch it again from the site.".format(timeout),
    }
    return Response(status=504, json_body=body, cache_control="no-store")


def forward(
    request: Request,
    port: int,
    token: str,
    session: requests.Session,
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
    upstream_origin = "http://127.0.0.1:{}".format(port)
    url = upstream_origin + request.path_qs
    try:
        upstream = session.request(
            request.method,
            url,
            headers=upstream_headers(request, token),
            data=request_body(request),
            stream=True,
            allow_redirects=False,
            timeout=timeout,
        )
    except requests.Timeout:
        return notebook_timed_out(request, port, timeout)
    except requests.RequestException as error:
        logger.warning("Notebook on port %d did not answer %s %s: %s", port, request.method, request.path, type(error))
        return Response(
            status=502,
            content_type="text/plain",
            text="The notebook server did not answer. It may have stopped; launch it again from the site.",
        )
    headers = response_headers(upstream, upstream_origin)
    content_type = upstream.headers.get("Content-Type", "")
    if banner and content_type.startswith("text/html") and PAGE_PATH.match(remainder):
        try:
            return with_banner(upstream, headers, banner)
        except requests.ConnectionError as error:
            if not isinstance(error.args[0], ReadTimeoutError):
                raise
            return notebook_timed_out(request, port, timeout)
    if request.method == "HEAD" or upstream.status_code in (204, 304):
        upstream.close()
        return Response(status=upstream.status_code, headerlist=headers)
    body = StreamedBody(upstream, slot, port, request.path, timeout)
    return Response(status=upstream.status_code, headerlist=headers, app_iter=body)


def proxy_request(
    request: Request,
    port: int,
    token: str,
    session: requests.Session,
    remainder: str = "",
    banner: str | None = None,
) -> Response:
    """Forward ``request`` to the notebook on ``127.0.0.1:port`` and return its answer.

    The path is forwarded unchanged: the notebook's base URL is the path the
    site serves it under.  ``remainder`` is that path below the base URL; a
    notebook application page found there gets ``banner`` (HTML) added.
    Over ``max_user_requests`` requests in flight to this notebook the
    answer is 503 (see :class:`RequestLimiter`).  An unreachable notebook gives 502; one that
    sends nothing for ``upstream_timeout`` seconds gives 504, or has its
    answer cut off if it stalls in the middle.
    """
    settings = request.registry.notebook_settings
    slot = request_limiter(request.registry).acquire(port, settings.max_user_requests)
    if slot is None:
        return too_many_requests(request, port, settings.max_user_requests)
    response = None
    try:
        response = forward(request, port, token, session, remainder, banner, settings.upstream_timeout, slot)
        return response
    finally:
        if response is None or not isinstance(response.app_iter, StreamedBody):
            slot.release()

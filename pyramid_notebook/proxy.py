"""Reverse-proxy one HTTP request to a user's notebook server on 127.0.0.1.

Both directions stream: the request body is read from the WSGI input as the
upstream connection sends it, and the response body is handed to the WSGI
server chunk by chunk, still compressed if the notebook compressed it.  The
notebook sees only what it needs: the method, path, query, body and content
headers, and the notebook's own token.  The browser's ``Host`` (Jupyter
refuses a foreign one), the site's cookies and credentials stay behind.
"""
import logging
import re
from http import cookiejar

import requests
from pyramid.request import Request
from pyramid.response import Response

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

#: Seconds to connect to a notebook on localhost, and to wait for each chunk.
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 300

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


def stream_body(upstream: requests.Response):
    """Yield the upstream body as it arrives, raw (still compressed), then close it."""
    try:
        yield from upstream.raw.stream(CHUNK_SIZE, decode_content=False)
    finally:
        upstream.close()


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
    are a few kilobytes.
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
    An unreachable notebook gives 502.
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
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
        )
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
        return with_banner(upstream, headers, banner)
    if request.method == "HEAD" or upstream.status_code in (204, 304):
        upstream.close()
        return Response(status=upstream.status_code, headerlist=headers)
    return Response(status=upstream.status_code, headerlist=headers, app_iter=stream_body(upstream))

"""Cross-site request protection for the notebook proxy.

Jupyter skips its own Origin and XSRF checks for requests that carry its
token, and the proxy adds the token to every request.  Without a check here,
any web page a logged-in staff member visits could post code to their
kernel.  So a request that can change something (any method but GET, HEAD
and OPTIONS, and every websocket upgrade) must come from a page of the site
itself or of its alternative notebook domain.
"""
from urllib.parse import urlsplit

from pyramid.httpexceptions import HTTPForbidden
from pyramid.request import Request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CrossSiteRequestRefused(HTTPForbidden):
    """403 for a request that could change something and does not come from the site's own pages.

    A class of its own, so that a site's forbidden view can tell it from a
    permission it refused and say what happened.
    """

    explanation = "The request does not come from this site's own pages, so it was refused."


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``, lower case, or None if it has none."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return None
    return "{}://{}".format(parts.scheme, parts.netloc).lower()


def allowed_origins(request: Request, alternative_domain: str | None) -> set[str]:
    """The origins whose pages may drive the notebook: the site's and the alternative domain's."""
    origins = {request.host_url.lower()}
    if alternative_domain:
        origins.add(alternative_domain.lower())
    return origins


def is_websocket_upgrade(request: Request) -> bool:
    """True for a websocket handshake, which browsers send cross-site without any CORS check."""
    return request.headers.get("Upgrade", "").lower() == "websocket"


def request_origin(request: Request) -> str | None:
    """Where the request says it comes from: ``Origin``, else the origin of ``Referer``.

    ``Referer`` is consulted only when there is no ``Origin`` header at all.
    Browsers send ``Origin: null`` from sandboxed frames, ``data:`` documents
    and after cross-origin redirects: that is a foreign page hiding where it
    is, and a ``Referer`` beside it (which the foreign page may control)
    must not vouch for it.
    """
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin_of(origin)
    referer = request.headers.get("Referer")
    return origin_of(referer) if referer else None


def is_cross_site(request: Request, alternative_domain: str | None) -> bool:
    """True if the request could change state and does not come from the site's own pages."""
    if request.method in SAFE_METHODS and not is_websocket_upgrade(request):
        return False
    return request_origin(request) not in allowed_origins(request, alternative_domain)


def is_foreign_navigation(request: Request, alternative_domain: str | None) -> bool:
    """True if a page of another web site sent the browser here, even by a plain link (a GET).

    ``Sec-Fetch-Site`` (sent by current browsers) says so directly; where it
    is missing or says "same-site", an ``Origin`` or ``Referer`` that is not
    the site's or the alternative domain's does.  A
    request with none of them (a bookmark, a typed address, a script) is the
    user's own.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site in ("same-origin", "none"):
        return False
    if fetch_site == "cross-site":
        return True
    # "same-site" (a sibling host, such as the alternative notebook domain),
    # or an older browser: the sending page's origin decides.
    sender = request.headers.get("Origin")
    if sender is None:
        sender = request.headers.get("Referer")
        if sender is None:
            return False
    return origin_of(sender) not in allowed_origins(request, alternative_domain)

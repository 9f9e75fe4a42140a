"""Cross-site request protection for the notebook proxy.

Jupyter skips its own Origin and XSRF checks for requests that carry its
token, and the proxy adds the token to every request.  Without a check here,
any web page a logged-in staff member visits could post code to their
kernel.  So a request that can change something (any method but GET, HEAD
and OPTIONS, and every websocket upgrade) must come from a page of the site
itself or of its alternative notebook domain.
"""
from urllib.parse import urlsplit

from pyramid.request import Request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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
    return request.headers.get("Upgrade", "").lower() == "websocket"


def request_origin(request: Request) -> str | None:
    """Where the request says it comes from: ``Origin``, else the origin of ``Referer``."""
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        return origin_of(origin)
    referer = request.headers.get("Referer")
    return origin_of(referer) if referer else None


def is_cross_site(request: Request, alternative_domain: str | None) -> bool:
    """True if the request could change state and does not come from the site's own pages."""
    if request.method in SAFE_METHODS and not is_websocket_upgrade(request):
        return False
    return request_origin(request) not in allowed_origins(request, alternative_domain)

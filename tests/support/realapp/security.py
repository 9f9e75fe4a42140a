"""Who is logged in (an identity that is the ``User`` row itself) and what they may do (ACLs).

The root factory's ``__acl__`` is the permission model; each page is a
resource below the root, so it inherits the root's ACL.
"""
from pyramid.authentication import SessionAuthenticationHelper
from pyramid.authorization import ACLHelper, Allow, Authenticated, Everyone
from pyramid.httpexceptions import HTTPNotFound
from pyramid.request import RequestLocalCache
from pyramid.session import SignedCookieSessionFactory

from tests.support.realapp.models import User, page_named


class Root:
    """The site's root: everybody reads, admins get notebook shells."""

    __acl__ = [
        (Allow, Everyone, "view"),
        (Allow, "role:editor", "edit"),
        (Allow, "role:admin", "edit"),
        (Allow, "role:admin", "shell"),
    ]
    __name__ = ""
    __parent__ = None

    def __init__(self, request):
        self.request = request


class PageResource:
    """One page, below the root; ``/{pagename}`` routes are traversed to it."""

    def __init__(self, page, parent: Root):
        self.page = page
        self.__name__ = page.name
        self.__parent__ = parent


def page_factory(request) -> PageResource:
    """The resource of the page the URL names; 404 for an unknown page."""
    page = page_named(request.dbsession, request.matchdict["pagename"])
    if page is None:
        raise HTTPNotFound()
    return PageResource(page, Root(request))


class SecurityPolicy:
    """Login in the session; the identity is the logged-in ``User``; roles become principals."""

    def __init__(self):
        self.helper = SessionAuthenticationHelper()
        self.acl = ACLHelper()
        self.cache = RequestLocalCache(self.load_identity)

    def load_identity(self, request) -> User | None:
        userid = self.helper.authenticated_userid(request)
        return None if userid is None else request.dbsession.get(User, userid)

    def identity(self, request) -> User | None:
        return self.cache.get_or_create(request)

    def authenticated_userid(self, request):
        user = self.identity(request)
        return None if user is None else user.id

    def permits(self, request, context, permission):
        principals = [Everyone]
        user = self.identity(request)
        if user is not None:
            principals += [Authenticated, "user:{}".format(user.id), "role:{}".format(user.role)]
        return self.acl.permits(context, principals, permission)

    def remember(self, request, userid, **kw):
        self.cache.clear(request)
        return self.helper.remember(request, userid, **kw)

    def forget(self, request, **kw):
        self.cache.clear(request)
        return self.helper.forget(request, **kw)


def includeme(config):
    """Sessions, the security policy, the root factory and CSRF checks on every POST."""
    config.set_session_factory(SignedCookieSessionFactory(config.get_settings()["realapp.secret"], httponly=True))
    config.set_security_policy(SecurityPolicy())
    config.set_root_factory(Root)
    config.set_default_csrf_options(require_csrf=True)

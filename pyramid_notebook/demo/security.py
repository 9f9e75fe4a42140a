"""Who is logged in, and who may open a shell.

A notebook shell runs arbitrary code as the web site's own Unix user, so the
``shell`` permission is not something an ordinary role grants.  Like the
original pyramid_notebook example, the demo grants it only to accounts named
in the INI file (``pyramid_notebook.demo.superusers``): whoever can edit that
file can already run code on the server.

The login is kept in the session (Pyramid's ``SessionAuthenticationHelper``);
what a principal may do comes from the ACL of :class:`Root`.  The user's
name is kept in the session too, checked against the database once a
minute: a notebook page makes dozens of proxied requests, and each would
otherwise cost a database query just to learn who is asking.
"""
import logging
import secrets
import time
from dataclasses import dataclass

from pyramid.authentication import SessionAuthenticationHelper
from pyramid.authorization import ACLHelper, Allow, Authenticated, Everyone
from pyramid.request import RequestLocalCache
from pyramid.session import SignedCookieSessionFactory
from pyramid.settings import asbool, aslist

from pyramid_notebook.demo.models import User

logger = logging.getLogger(__name__)

#: The principal of accounts on the superuser whitelist.
SHELL_PRINCIPAL = "group:shell"

#: Session key of the logged-in account as last read from the database.
IDENTITY_KEY = "pyramid_notebook.demo.identity"

#: Seconds the session's copy of the account is trusted before it is read
#: again: an account deleted since is logged out within this time.
IDENTITY_CHECK_SECONDS = 60


@dataclass(frozen=True)
class DemoIdentity:
    """Who is logged in: the account's id and name, as the database had them when last checked."""

    id: int
    username: str


class Root:
    """The site's root resource: its ACL is the whole permission model."""

    __acl__ = [
        (Allow, Everyone, "view"),
        (Allow, SHELL_PRINCIPAL, "shell"),
        # The operators' page can stop anybody's notebook.  In the demo the
        # people trusted with shells are also its operators; a real site may
        # well keep a separate list.
        (Allow, SHELL_PRINCIPAL, "admin"),
    ]

    def __init__(self, request):
        self.request = request


class DemoSecurityPolicy:
    """Session login plus ACL authorization, with the whitelist as a principal."""

    def __init__(self, superusers):
        self.superusers = frozenset(superusers)
        self.helper = SessionAuthenticationHelper()
        self.acl = ACLHelper()
        self.identity_cache = RequestLocalCache(self.load_identity)

    def load_identity(self, request) -> DemoIdentity | None:
        userid = self.helper.authenticated_userid(request)
        if userid is None:
            return None
        known = request.session.get(IDENTITY_KEY)
        if known and known["id"] == userid and time.time() - known["checked"] < IDENTITY_CHECK_SECONDS:
            return DemoIdentity(known["id"], known["username"])
        # An account deleted since the login is logged out.
        user = request.dbsession.get(User, userid)
        if user is None:
            request.session.pop(IDENTITY_KEY, None)
            return None
        request.session[IDENTITY_KEY] = {"id": user.id, "username": user.username, "checked": time.time()}
        return DemoIdentity(user.id, user.username)

    def identity(self, request) -> DemoIdentity | None:
        return self.identity_cache.get_or_create(request)

    def authenticated_userid(self, request):
        user = self.identity(request)
        return None if user is None else user.id

    def effective_principals(self, request) -> list[str]:
        """Everyone, plus for a logged-in account its user principal and, on the whitelist, the shell group."""
        principals = [Everyone]
        user = self.identity(request)
        if user is not None:
            principals += [Authenticated, "user:{}".format(user.id)]
            if user.username in self.superusers:
                principals.append(SHELL_PRINCIPAL)
        return principals

    def permits(self, request, context, permission):
        return self.acl.permits(context, self.effective_principals(request), permission)

    def remember(self, request, userid, **kw):
        self.identity_cache.clear(request)
        return self.helper.remember(request, userid, **kw)

    def forget(self, request, **kw):
        self.identity_cache.clear(request)
        return self.helper.forget(request, **kw)


def session_secret(settings: dict) -> str:
    """The session signing secret from ``pyramid_notebook.demo.secret``.

    Whoever knows it can forge a login and so get a shell on the server, so
    no fixed secret ships with the demo: when the setting is empty a random
    one is made for this process (logins then end when the server restarts).
    """
    secret = settings.get("pyramid_notebook.demo.secret", "").strip()
    if secret:
        return secret
    logger.warning(
        "pyramid_notebook.demo.secret is not set: using a random session secret; "
        "logins will not survive a restart and cannot be shared between processes"
    )
    return secrets.token_urlsafe(32)


def includeme(config):
    """Sessions, login, the shell whitelist and CSRF checks on every unsafe request."""
    settings = config.get_settings()
    config.set_session_factory(
        SignedCookieSessionFactory(
            session_secret(settings),
            cookie_name="demo_session",
            httponly=True,
            samesite="Lax",
            secure=asbool(settings.get("pyramid_notebook.demo.secure_cookies", False)),
        )
    )
    superusers = aslist(settings.get("pyramid_notebook.demo.superusers", ""))
    config.set_security_policy(DemoSecurityPolicy(superusers))
    config.set_root_factory(Root)
    # Every POST, PUT and DELETE must carry the session's CSRF token, except
    # in views that opt out: the notebook proxy does, because the Jupyter
    # front end cannot know the token and the library checks Origin itself.
    config.set_default_csrf_options(require_csrf=True)

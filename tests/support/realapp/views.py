"""The app's own pages: the page list, a page per ``Page`` row (``/{pagename}``), login and logout."""
from markupsafe import Markup
from pyramid.csrf import get_csrf_token
from pyramid.httpexceptions import HTTPFound
from pyramid.response import Response
from pyramid.security import forget, remember
from pyramid.view import forbidden_view_config, view_config
from sqlalchemy import select

from tests.support.realapp.models import Page, User

LAYOUT = Markup("""<!DOCTYPE html>
<html><head><title>{title}</title></head>
<body><header>{user}</header><main>{body}</main></body></html>
""")


def render(request, title: str, body: Markup, status: int = 200) -> Response:
    """A page of the app, with who is logged in at the top."""
    if request.identity is None:
        user = Markup('<a id="login-link" href="{}">Log in</a>').format(request.route_url("login"))
    else:
        user = Markup('<span id="current-user">{}</span>').format(request.identity.name)
    return Response(LAYOUT.format(title=title, user=user, body=body), status=status)


@view_config(route_name="home", permission="view")
def home(request):
    """Every page, and the site shell for those who may open it."""
    pages = request.dbsession.scalars(select(Page).order_by(Page.name)).all()
    items = Markup("").join(
        Markup('<li><a href="{}">{}</a></li>').format(request.route_url("page", pagename=page.name), page.title)
        for page in pages
    )
    body = Markup("<ul>{}</ul>").format(items)
    if request.has_permission("shell"):
        body += Markup('<a id="site-shell" href="{}">Shell</a>').format(request.route_url("shell"))
    return render(request, "Pages", body)


@view_config(route_name="page", permission="view")
def page_view(request):
    """One page, and a shell on it for those who may open one."""
    page = request.context.page
    body = Markup('<h1 id="page-title">{}</h1><div id="page-body">{}</div>').format(page.title, page.body)
    if request.has_permission("shell"):
        body += Markup('<a id="page-shell" href="{}">Shell on this page</a>').format(
            request.route_url("page_shell", pagename=page.name)
        )
    return render(request, page.title, body)


@view_config(route_name="login")
def login(request):
    """The login form; a POST (CSRF-checked by Pyramid) with a right password logs in."""
    error = ""
    if request.method == "POST":
        user = request.dbsession.scalars(select(User).where(User.name == request.POST.get("name", ""))).one_or_none()
        if user is not None and user.check_password(request.POST.get("password", "")):
            request.session.invalidate()
            came_from = request.params.get("came_from", "")
            if not came_from.startswith(request.application_url + "/"):
                came_from = request.route_url("home")
            return HTTPFound(came_from, headers=remember(request, user.id))
        error = "Wrong name or password."
    form = Markup(
        '<form id="login-form" method="POST"><p id="login-error">{}</p>'
        '<input type="hidden" name="csrf_token" value="{}"><input type="hidden" name="came_from" value="{}">'
        '<input name="name"><input name="password" type="password">'
        '<button id="login-submit" type="submit">Log in</button></form>'
    ).format(error, get_csrf_token(request), request.params.get("came_from", ""))
    return render(request, "Log in", form)


@view_config(route_name="logout", request_method="POST")
def logout(request):
    """Log out (a POST with the CSRF token)."""
    request.session.invalidate()
    return HTTPFound(request.route_url("home"), headers=forget(request))


@forbidden_view_config()
def forbidden(request):
    """Visitors log in first; logged-in users without the permission get a 403."""
    if request.identity is None:
        return HTTPFound(request.route_url("login", _query={"came_from": request.url}))
    return render(request, "Forbidden", Markup("<p id=\"forbidden\">You may not do that.</p>"), status=403)

"""``config.add_notebook_routes()``: routes in the right order, views behind the permission, conflicts reported."""
import pytest
import webtest
from pyramid.config import Configurator
from pyramid.csrf import CookieCSRFStoragePolicy
from pyramid.exceptions import ConfigurationConflictError, ConfigurationError
from pyramid.interfaces import IRoutesMapper
from pyramid.session import SignedCookieSessionFactory

from pyramid_notebook import views


def site_username(request) -> str | None:
    """A site's own idea of the user's name: here, a header."""
    return request.headers.get("X-Site-User")


def make_config(settings: dict, **directive_arguments) -> Configurator:
    config = Configurator(settings=settings, session_factory=SignedCookieSessionFactory("test-routes-secret"))
    config.include("pyramid_notebook")
    config.add_route("catch_all", "/{pagename}")
    config.add_notebook_routes(**directive_arguments)
    return config


def route_patterns(config: Configurator) -> list[tuple[str, str]]:
    mapper = config.registry.getUtility(IRoutesMapper)
    return [(route.name, route.pattern) for route in mapper.get_routes()]


def test_routes_in_order_under_the_prefix(settings):
    config = make_config(settings, prefix="/shell/notebook/")
    config.commit()
    assert route_patterns(config)[1:] == [
        (views.STATUS_ROUTE, "/shell/notebook/_pyramid_notebook/status"),
        (views.SHUTDOWN_ROUTE, "/shell/notebook/shutdown"),
        (views.PROXY_ROUTE, "/shell/notebook/*remainder"),
    ]


def test_a_site_without_a_session_or_csrf_storage_is_told_at_start_up(settings):
    config = Configurator(settings=settings)
    config.include("pyramid_notebook")
    with pytest.raises(ConfigurationError, match="session factory"):
        config.commit()
    config = Configurator(settings=settings)
    config.include("pyramid_notebook")
    config.set_csrf_storage_policy(CookieCSRFStoragePolicy())
    config.commit()


def test_a_second_call_is_a_configuration_conflict(settings):
    config = make_config(settings)
    config.add_notebook_routes(prefix="/other")
    with pytest.raises(ConfigurationConflictError):
        config.commit()


def test_views_use_the_sites_name_for_the_user_and_its_permission(settings):
    config = make_config(settings, username="tests.test_routes.site_username")
    app = webtest.TestApp(config.make_wsgi_app())
    status = app.get("/notebook/_pyramid_notebook/status", headers={"X-Site-User": "alice"})
    assert status.json["state"] == "stopped"
    app.get("/notebook/_pyramid_notebook/status", status=403)
    app.get("/notebook/api/status", headers={"X-Site-User": "../etc"}, status=400)
    assert app.get("/notebook/shutdown", headers={"X-Site-User": "alice"}).html.find(
        id="pyramid-notebook-confirm-shutdown"
    )


def test_default_name_is_the_authenticated_userid_and_a_permission_guards_every_view(settings):
    from pyramid.authorization import ACLHelper, Allow

    class HeaderPolicy:
        def identity(self, request):
            return request.headers.get("X-User")

        def authenticated_userid(self, request):
            return self.identity(request)

        def permits(self, request, context, permission):
            principals = ["system.Everyone"] + (["shell-users"] if self.identity(request) == "alice" else [])
            return ACLHelper().permits(context, principals, permission)

    class Root:
        __acl__ = [(Allow, "shell-users", "shell")]

        def __init__(self, request):
            pass

    config = make_config(settings, permission="shell", factory=Root)
    config.set_security_policy(HeaderPolicy())
    app = webtest.TestApp(config.make_wsgi_app())
    assert app.get("/notebook/_pyramid_notebook/status", headers={"X-User": "alice"}).json["state"] == "stopped"
    app.get("/notebook/_pyramid_notebook/status", headers={"X-User": "bob"}, status=403)
    app.get("/notebook/tree", headers={"X-User": "bob"}, status=403)


class SiteTemplate:
    """A renderer factory standing in for a site's template engine: it shows what the page gave it."""

    def __init__(self, info):
        self.name = info.name

    def __call__(self, value, system):
        return "<main data-template='{}'>{}|{}|{}</main>".format(
            self.name, value["title"], value["content"].__html__(), value["back_url"]
        )


def test_pages_render_in_the_sites_own_template(settings):
    settings = dict(settings, **{"pyramid_notebook.page_renderer": "myapp:templates/notebook.page"})
    config = make_config(settings, username="tests.test_routes.site_username")
    config.add_renderer(".page", SiteTemplate)
    app = webtest.TestApp(config.make_wsgi_app())
    page = app.get("/notebook/shutdown", headers={"X-Site-User": "alice"})
    assert page.text.startswith("<main data-template='myapp:templates/notebook.page'>Shut down your notebook?|")
    assert 'id="pyramid-notebook-confirm-shutdown"' in page.text
    assert page.text.endswith("|http://localhost/</main>")


def test_a_page_renderer_the_site_cannot_render_stops_start_up(settings):
    settings = dict(settings, **{"pyramid_notebook.page_renderer": "myapp:templates/notebook.jinja2"})
    config = make_config(settings)
    with pytest.raises(ConfigurationError, match="pyramid_notebook.page_renderer"):
        config.commit()


def test_built_in_pages_lead_back_to_the_site(settings):
    app = webtest.TestApp(make_config(settings, username="tests.test_routes.site_username").make_wsgi_app())
    page = app.get("/notebook/shutdown", headers={"X-Site-User": "alice"})
    assert page.html.find(id="pyramid-notebook-back")["href"] == "http://localhost/"


def test_the_status_shows_each_step_of_a_start():
    from pyramid_notebook.protocol.context import NotebookContext

    launched = NotebookContext(launched_at=1000.0)
    assert views.status_body("starting", launched)["steps"] == {"process": False, "server": False, "kernel": False}
    listening = NotebookContext(launched_at=1000.0, pid=42, listening=True)
    assert views.status_body("starting", listening)["steps"] == {"process": True, "server": True, "kernel": False}
    assert views.status_body("stopped", None) == {
        "state": "stopped",
        "steps": {"process": False, "server": False, "kernel": False},
        "elapsed": 0,
    }

"""The Pyramid integration: settings, launch, shutdown and the HTTP proxy, with real notebooks."""

import pytest
from pyramid.exceptions import ConfigurationError

from pyramid_notebook.settings import parse_settings
from tests.support import site
from tests.support.kernel_client import run_in_notebook
from tests.support.site import as_user, site_app
from tests.support.site_client import SAME_SITE, launch, shut_down
from tests.support.site_server import REPOSITORY


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"pyramid_notebook.notebook_folder": ""}, "pyramid_notebook.notebook_folder"),
        ({"pyramid_notebook.kill_timeout": "soon"}, "pyramid_notebook.kill_timeout"),
        ({"pyramid_notebook.kill_timeout": "0"}, "pyramid_notebook.kill_timeout"),
        ({"pyramid_notebook.port_range": "-5"}, "pyramid_notebook.port_range"),
        ({"pyramid_notebook.min_port": "65000", "pyramid_notebook.port_range": "1000"}, "pyramid_notebook.port_range"),
        ({"pyramid_notebook.websocket_proxy": "no.such.module.serve"}, "pyramid_notebook.websocket_proxy"),
        ({"pyramid_notebook.websocket_proxy": "pyramid_notebook.views.PROXY_ROUTE"}, "not callable"),
        ({"pyramid_notebook.alternative_domain": "ws.example.com"}, "pyramid_notebook.alternative_domain"),
        ({"pyramid_notebook.start_timeout": "forever"}, "pyramid_notebook.start_timeout"),
    ],
)
def test_bad_settings_name_the_setting(settings, changes, named):
    with pytest.raises(ConfigurationError, match=named):
        site.main({}, **dict(settings, **changes))


def test_settings_defaults(settings):
    parsed = parse_settings(settings)
    assert parsed.kill_timeout == 3600
    assert parsed.websocket_proxy is None
    assert parsed.alternative_domain is None
    assert parse_settings(dict(settings, **{"pyramid_notebook.port_range": "1000"})).port_range >= 100


def test_launch_redirects_into_the_default_notebook(app):
    response = launch(app)
    context = app.app.registry.notebook_manager.get_context("alice")
    assert response.location == "http://localhost/notebook/notebooks/" + context.notebook_name
    assert context.token not in response.location
    assert context.notebook_path == "/notebook/"
    assert context.allow_origin == "http://localhost"


def test_launch_with_alternative_domain(settings):
    settings["pyramid_notebook.alternative_domain"] = "https://ws.example.com"
    settings["pyramid_notebook.websocket_proxy"] = "pyramid_notebook.views.shutdown_notebook"
    with site_app(settings) as app:
        response = launch(app)
        context = app.app.registry.notebook_manager.get_context("alice")
        assert response.location == "https://ws.example.com/notebook/notebooks/" + context.notebook_name
        assert context.websocket_url == "wss://ws.example.com/notebook/"
        assert context.allow_origin == "https://ws.example.com"
        status = app.get("/notebook/api/status", headers=as_user("alice", Origin="https://ws.example.com"))
        assert status.status_int == 200


def test_status_api_through_the_proxy(app):
    launch(app)
    status = app.get("/notebook/_pyramid_notebook/status", headers=as_user("alice")).json
    assert status["steps"] == {"process": True, "server": True, "kernel": True}
    response = app.get("/notebook/api/status", headers=as_user("alice"))
    assert response.json["kernels"] == 1, "the landing notebook's kernel, started with the server"
    assert response.content_type == "application/json"


def test_notebook_page_has_the_shutdown_banner_and_no_token(settings):
    settings["pyramid_notebook.websocket_proxy"] = "pyramid_notebook.views.shutdown_notebook"
    with site_app(settings) as app:
        location = launch(app).location
        page = app.get(location.replace("http://localhost", ""), headers=as_user("alice"))
        context = app.app.registry.notebook_manager.get_context("alice")
        banner = page.html.find(id="pyramid-notebook-banner")
        assert banner.form["method"] == "post" and banner.form["action"] == "http://localhost/notebook/shutdown"
        assert banner.find("input", attrs={"name": "csrf_token"})["value"]
        assert context.token not in page.text
        assert "_xsrf" not in " ".join(page.headers.getall("Set-Cookie")), "the notebook's own cookies stay behind"


def test_redirects_stay_on_the_site(app):
    launch(app)
    response = app.get("/notebook/", headers=as_user("alice"), status=302)
    assert response.location.startswith("http://localhost/notebook/")


def test_cross_site_writes_are_refused(app):
    launch(app)
    body = {"name": "python3"}
    evil = as_user("alice", Origin="http://evil.example")
    app.post_json("/notebook/api/kernels", body, headers=evil, status=403)
    app.post_json("/notebook/api/kernels", body, headers=as_user("alice"), status=403)
    evil_referer = as_user("alice", Referer="http://evil.example/page")
    app.post_json("/notebook/api/kernels", body, headers=evil_referer, status=403)
    app.get("/notebook/api/kernels", headers=as_user("alice", Upgrade="websocket", **SAME_SITE), status=501)
    app.get(
        "/notebook/api/kernels", headers=as_user("alice", Upgrade="websocket", Origin="http://evil.example"), status=403
    )

    created = app.post_json("/notebook/api/kernels", body, headers=as_user("alice", **SAME_SITE), status=201)
    referer = as_user("alice", Referer="http://localhost/notebook/tree")
    app.delete("/notebook/api/kernels/" + created.json["id"], headers=referer, status=204)


def test_users_reach_only_their_own_notebook(app):
    launch(app, "alice")
    launch(app, "bob")
    manager = app.app.registry.notebook_manager
    assert manager.get_context("alice").http_port != manager.get_context("bob").http_port
    def kernel_ids(user):
        return {kernel["id"] for kernel in app.get("/notebook/api/kernels", headers=as_user(user)).json}

    alice_landing, bob_landing = kernel_ids("alice"), kernel_ids("bob")
    kernel = app.post_json("/notebook/api/kernels", {}, headers=as_user("alice", **SAME_SITE), status=201).json
    assert kernel_ids("alice") == alice_landing | {kernel["id"]}
    assert kernel_ids("bob") == bob_landing and not bob_landing & kernel_ids("alice")
    app.get("/notebook/api/kernels/" + kernel["id"], headers=as_user("bob"), status=404)


def test_no_notebook_running(app):
    page = app.get("/notebook/tree", headers=as_user("carol"), status=503)
    assert "not running" in page.text
    assert page.content_type == "text/html"
    api = app.get("/notebook/api/status", headers=as_user("carol"), status=503)
    assert api.json["error"] == "notebook_not_running"
    assert not app.app.registry.notebook_manager.is_running("carol")


def test_stopped_notebook_offers_to_start_again(app):
    launch(app, greeting="Hi")
    shut_down(app)
    page = app.get("/notebook/tree", headers=as_user("alice"), status=503)
    assert 'href="http://localhost/launch?greeting=Hi"' in page.text


def test_shutdown_when_nothing_runs_is_fine(app):
    assert shut_down(app, "nobody").location == "http://localhost/"


def test_bad_user_name_is_a_clear_error(app):
    response = app.get("/launch", headers=as_user("../etc"), status=400)
    assert "must not contain a slash" in response.text


def test_startup_helpers_bootstrap_the_site_and_models(app, settings, tmp_path):
    """The 2015 helpers on a plain dict still work; the test site itself uses NotebookContext's methods."""
    from pyramid_notebook import startup
    from tests.support import sample_models

    database = "sqlite:///{}".format(tmp_path / "site.sqlite")
    sample_models.create_database(database)
    config_file = tmp_path / "site.ini"
    config_file.write_text(
        "[app:main]\nuse = call:tests.support.site:main\n"
        + "".join("{} = {}\n".format(key, value) for key, value in settings.items())
        + "sqlalchemy.url = {}\nsite.marker = from-the-ini\n".format(database)
    )
    nb = {}
    startup.make_startup(nb, str(config_file), cwd=str(REPOSITORY))
    startup.include_sqlalchemy_models(nb, sample_models.Base)
    startup.add_script(
        nb,
        "from sqlalchemy import create_engine\nfrom sqlalchemy.orm import Session\n"
        "session = Session(create_engine(registry.settings['sqlalchemy.url']))",
    )
    assert "**Models**: `Person`, `Pet`" in nb["greeting"]
    assert "**registry**" in nb["greeting"]

    manager = app.app.registry.notebook_manager
    context, _ = manager.start_notebook_on_demand("alice", nb)
    outcome = run_in_notebook(
        context,
        "print(registry.settings['site.marker'], type(app).__name__, request.host, root is not None)\n"
        "print(sorted(p.name for p in session.query(Person)), session.get(Pet, 1).name)",
    )
    assert outcome["error"] is None, outcome
    assert outcome["stdout"] == "from-the-ini Router localhost:80 True\n['Ada', 'Grace'] Rex\n"

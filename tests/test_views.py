"""The Pyramid integration: settings, launch, shutdown and the HTTP proxy, with real notebooks."""

import pytest
from pyramid.exceptions import ConfigurationError

from pyramid_notebook.settings import parse_settings
from pyramid_notebook.waiting import wait_for
from tests import site
from tests.conftest import make_app
from tests.kernel_client import run_in_notebook
from tests.site import as_user

SAME_SITE = {"Origin": "http://localhost"}


def notebook_state(app, user="alice") -> str:
    return app.get("/notebook/_pyramid_notebook/status", headers=as_user(user)).json["state"]


def shut_down(app, user="alice"):
    """Shut the user's notebook down as the banner does: the confirmation form, posted with the CSRF token."""
    form = app.get("/notebook/shutdown", headers=as_user(user), status=200).forms[0]
    return form.submit(headers=as_user(user, **SAME_SITE), status=302)


def launch(app, user="alice", **params):
    """Launch and wait until the notebook serves: the launch itself redirects at once."""
    response = app.get("/launch", params=params, headers=as_user(user), status=302)
    assert wait_for(lambda: notebook_state(app, user) != "starting", 60)
    assert notebook_state(app, user) == "running"
    return response


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
    assert response.location == "http://localhost/notebook/notebooks/" + context["notebook_name"]
    assert context["token"] not in response.location
    assert context["notebook_path"] == "/notebook/"
    assert context["allow_origin"] == "http://localhost"


def test_launch_with_alternative_domain(settings):
    settings["pyramid_notebook.alternative_domain"] = "https://ws.example.com"
    settings["pyramid_notebook.websocket_proxy"] = "pyramid_notebook.views.shutdown_notebook"
    for app in make_app(settings):
        response = launch(app)
        context = app.app.registry.notebook_manager.get_context("alice")
        assert response.location == "https://ws.example.com/notebook/notebooks/" + context["notebook_name"]
        assert context["websocket_url"] == "wss://ws.example.com/notebook/"
        assert context["allow_origin"] == "https://ws.example.com"
        status = app.get("/notebook/api/status", headers=as_user("alice", Origin="https://ws.example.com"))
        assert status.status_int == 200


def test_status_api_through_the_proxy(app):
    launch(app)
    response = app.get("/notebook/api/status", headers=as_user("alice"))
    assert response.json["kernels"] == 0
    assert response.content_type == "application/json"


def test_notebook_page_has_the_shutdown_banner_and_no_token(settings):
    settings["pyramid_notebook.websocket_proxy"] = "pyramid_notebook.views.shutdown_notebook"
    for app in make_app(settings):
        location = launch(app).location
        page = app.get(location.replace("http://localhost", ""), headers=as_user("alice"))
        context = app.app.registry.notebook_manager.get_context("alice")
        banner = page.html.find(id="pyramid-notebook-banner")
        assert banner.form["method"] == "post" and banner.form["action"] == "http://localhost/notebook/shutdown"
        assert banner.find("input", attrs={"name": "csrf_token"})["value"]
        assert context["token"] not in page.text
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
    assert manager.get_context("alice")["http_port"] != manager.get_context("bob")["http_port"]
    kernel = app.post_json("/notebook/api/kernels", {}, headers=as_user("alice", **SAME_SITE), status=201).json
    assert [k["id"] for k in app.get("/notebook/api/kernels", headers=as_user("alice")).json] == [kernel["id"]]
    assert app.get("/notebook/api/kernels", headers=as_user("bob")).json == []
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
    with pytest.raises(ValueError, match="must not contain a slash"):
        app.get("/launch", headers=as_user("../etc"))


def test_startup_helpers_bootstrap_the_site_and_models(app, settings, tmp_path):
    from pyramid_notebook import startup
    from tests import sample_models

    database = "sqlite:///{}".format(tmp_path / "site.sqlite")
    sample_models.create_database(database)
    config_file = tmp_path / "site.ini"
    config_file.write_text(
        "[app:main]\nuse = call:tests.site:main\n"
        + "".join("{} = {}\n".format(key, value) for key, value in settings.items())
        + "sqlalchemy.url = {}\nsite.marker = from-the-ini\n".format(database)
    )
    nb = {}
    startup.make_startup(nb, str(config_file), cwd=str(site.__file__).rsplit("/tests/", 1)[0])
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

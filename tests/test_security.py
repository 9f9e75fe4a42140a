"""No state change from another web site: Origin null, cross-site GETs, shutdown and logout, with real notebooks.

Each test here failed before the fix it guards (see docs/security.rst for
the threat table that names them).  The origin checks themselves are unit
tested in ``tests/test_web_units.py``.
"""

from pyramid_notebook.protocol.context import STOPPED_BY_LOGOUT, STOPPED_BY_USER
from pyramid_notebook.waiting import wait_for
from tests.support.site import as_user
from tests.support.site_client import SAME_SITE, launch, notebook_state, shut_down

CROSS_SITE_LINK = {"Sec-Fetch-Site": "cross-site", "Referer": "http://evil.example/page"}


def test_origin_null_with_a_site_referer_changes_nothing(app):
    launch(app)
    kernels_before = app.get("/notebook/api/kernels", headers=as_user("alice")).json
    forged = as_user("alice", Origin="null", Referer="http://localhost/notebook/tree")
    app.post_json("/notebook/api/kernels", {"name": "python3"}, headers=forged, status=403)
    app.put_json("/notebook/api/contents/planted.py", {"type": "file", "format": "text", "content": ""},
                 headers=forged, status=403)
    app.post("/notebook/api/shutdown", headers=forged, status=403)
    assert app.get("/notebook/api/kernels", headers=as_user("alice")).json == kernels_before
    assert notebook_state(app) == "running"


def test_shutdown_needs_a_post_with_the_csrf_token(app):
    launch(app)
    manager = app.app.registry.notebook_manager
    confirmation = app.get("/notebook/shutdown", headers=as_user("alice", **CROSS_SITE_LINK), status=200)
    assert confirmation.html.find(id="pyramid-notebook-confirm-shutdown") is not None
    assert notebook_state(app) == "running", "a GET (a link on any web site) stops nothing"
    app.post("/notebook/shutdown", headers=as_user("alice", **SAME_SITE), status=400)
    token = confirmation.forms[0]["csrf_token"].value
    app.post("/notebook/shutdown", {"csrf_token": token}, headers=as_user("alice", Origin="null"), status=403)
    app.post("/notebook/shutdown", {"csrf_token": token}, headers=as_user("alice", Origin="http://evil.example"),
             status=403)
    assert notebook_state(app) == "running"
    assert shut_down(app).location == "http://localhost/"
    assert notebook_state(app) == "stopped"
    assert manager.get_context("alice").stopped_reason == STOPPED_BY_USER


def use_notebook(app, user="alice"):
    """Open the user's notebook page, as a person would, and wait until the notebook counts it as use."""
    manager = app.app.registry.notebook_manager
    context = manager.get_context(user)
    app.get("/notebook/notebooks/" + context.notebook_name, headers=as_user(user))

    def used():
        current = manager.get_context(user)
        return (current.last_activity or 0) > (current.started or 0)

    assert wait_for(used, 40), "opening the notebook page did not count as use"
    return manager.get_context(user)


def test_another_context_never_restarts_a_used_notebook_on_a_get(app):
    launch(app, greeting="First page")
    before = use_notebook(app)
    page = app.get("/launch", params={"greeting": "Second page"}, headers=as_user("alice"), status=200)
    question = page.html.find(id="pyramid-notebook-confirm-restart").text
    assert "running with another context" in question
    assert "http://localhost/launch?greeting=First+page" in question
    assert "last used just now" in question
    assert page.html.find(id="pyramid-notebook-open-running")["href"].endswith(before.notebook_name)
    after = app.app.registry.notebook_manager.get_context("alice")
    assert (after.pid, after.context_hash) == (before.pid, before.context_hash)

    restart = page.forms[0]
    without_token = {name: value for name, value in restart.submit_fields() if name != "csrf_token"}
    app.post(restart.action, without_token, headers=as_user("alice", **SAME_SITE), status=400)
    app.post(restart.action, dict(restart.submit_fields()), headers=as_user("alice", Origin="null"), status=403)
    assert app.app.registry.notebook_manager.get_context("alice").pid == before.pid
    restart.submit(headers=as_user("alice", **SAME_SITE), status=302)
    assert wait_for(lambda: notebook_state(app) != "starting", 60)
    restarted = app.app.registry.notebook_manager.get_context("alice")
    assert restarted.pid != before.pid and restarted.context_hash != before.context_hash


def test_the_same_context_goes_straight_in(app):
    launch(app, greeting="Same")
    before = use_notebook(app)
    response = app.get("/launch", params={"greeting": "Same"}, headers=as_user("alice", **CROSS_SITE_LINK), status=302)
    assert response.location.endswith(before.notebook_name)
    assert app.app.registry.notebook_manager.get_context("alice").pid == before.pid


def test_a_launch_from_another_site_starts_nothing_without_confirmation(app):
    manager = app.app.registry.notebook_manager
    page = app.get("/launch", headers=as_user("alice", **CROSS_SITE_LINK), status=200)
    assert page.html.find(id="pyramid-notebook-confirm-start") is not None
    assert manager.get_context("alice") is None, "nothing was started"
    page.forms[0].submit(headers=as_user("alice", **SAME_SITE), status=302)
    assert wait_for(lambda: notebook_state(app) != "starting", 60)
    assert notebook_state(app) == "running"


def test_logout_stops_the_notebook(app):
    launch(app)
    manager = app.app.registry.notebook_manager
    form_page = app.get("/notebook/shutdown", headers=as_user("alice"))
    token = form_page.forms[0]["csrf_token"].value
    app.post("/logout", {"csrf_token": token}, headers=as_user("alice", **SAME_SITE), status=302)
    assert notebook_state(app) == "stopped"
    assert manager.get_context("alice").stopped_reason == STOPPED_BY_LOGOUT

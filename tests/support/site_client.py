"""Driving the test site (:mod:`tests.support.site`) under WebTest as a user would: launch, check, shut down."""
import webtest

from pyramid_notebook.waiting import wait_for
from tests.support.site import as_user

#: The Origin header of the site's own pages.
SAME_SITE = {"Origin": "http://localhost"}

#: Seconds a launched notebook may take to serve.
START_SECONDS = 60


def notebook_state(app: webtest.TestApp, user: str = "alice") -> str:
    """The state of the user's notebook, as the progress page reads it."""
    return app.get("/notebook/_pyramid_notebook/status", headers=as_user(user)).json["state"]


def shut_down(app: webtest.TestApp, user: str = "alice") -> webtest.TestResponse:
    """Shut the user's notebook down as the banner does: the confirmation form, posted with the CSRF token."""
    form = app.get("/notebook/shutdown", headers=as_user(user), status=200).forms[0]
    return form.submit(headers=as_user(user, **SAME_SITE), status=302)


def launch(app: webtest.TestApp, user: str = "alice", **params) -> webtest.TestResponse:
    """Launch and wait until the notebook serves: the launch itself redirects at once."""
    response = app.get("/launch", params=params, headers=as_user(user), status=302)
    assert wait_for(lambda: notebook_state(app, user) != "starting", START_SECONDS)
    assert notebook_state(app, user) == "running"
    return response

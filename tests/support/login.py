"""Logging in to the demo through its login form, once per transport: WebTest, requests, Chromium.

Each fills in and submits the form as a visitor would, CSRF token included.
"""
import re

import requests
import webtest

from pyramid_notebook.waiting import wait_for
from tests.support.chromium import PAGE_SECONDS
from tests.support.demo import PASSWORD

CSRF_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a demo page."""
    found = CSRF_TOKEN.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def log_in_testapp(
    testapp: webtest.TestApp, username: str, password: str = PASSWORD, came_from: str | None = None
) -> webtest.TestResponse:
    """Fill in and submit the login form under WebTest; returns the response to the POST (not checked)."""
    page = testapp.get("/login", params={"came_from": came_from} if came_from else {})
    form = page.forms["login-form"]
    form["username"] = username
    form["password"] = password
    return form.submit()


def log_in_session(base: str, username: str, password: str = PASSWORD) -> requests.Session:
    """A requests session logged in to the demo at ``base``: a plain one, with keep-alive, as API clients use."""
    session = requests.Session()
    page = session.get(base + "/login", timeout=10)
    page.raise_for_status()
    response = session.post(
        base + "/login",
        data={"csrf_token": csrf_token(page.text), "came_from": "", "username": username, "password": password},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, "login failed: {} {}".format(response.status_code, response.text[:300])
    return session


def log_in_browser(browser, base: str, username: str, password: str = PASSWORD) -> None:
    """Log in to the demo at ``base`` in a splinter browser; fails unless the home page then names the user."""
    browser.visit(base + "/login")
    browser.fill("username", username)
    browser.fill("password", password)
    browser.find_by_id("login-submit").click()
    # A browser logged in already shows the current user on the login page
    # too: wait for the page the login leads to, not just for the element.
    assert wait_for(lambda: "/login" not in browser.url, PAGE_SECONDS), "login failed"
    assert browser.is_element_present_by_id("current-user", wait_time=PAGE_SECONDS), "login failed"
    assert browser.find_by_id("current-user").text == username


def cookie_header(session: requests.Session) -> str:
    """The session's cookies as a ``Cookie`` header, for websocket clients."""
    return "; ".join("{}={}".format(name, value) for name, value in session.cookies.items())

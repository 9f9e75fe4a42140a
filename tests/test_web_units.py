"""The web side's decisions, one function at a time: no notebook, server or socket.

``pyramid.testing`` gives each test a registry and ``DummyRequest``s;
``Test_includeme`` follows pyramid_tm's tests of its own ``includeme``.
"""
import io
import re
import tempfile
import unittest
from pathlib import Path

import pytest
import urllib3
from pyramid import testing
from pyramid.exceptions import ConfigurationError
from pyramid.session import SignedCookieSessionFactory

from pyramid_notebook.manager import NotebookManager
from pyramid_notebook.origin import is_cross_site, is_foreign_navigation
from pyramid_notebook.protocol.context import NotebookContext
from pyramid_notebook.proxy import response_headers
from pyramid_notebook.settings import PREFIX, NotebookSettings, parse_settings
from pyramid_notebook.views import PROXY_ROUTE, SHUTDOWN_ROUTE, fill_context_defaults

SITE = "http://localhost"
ALTERNATIVE_DOMAIN = "https://ws.example.com"
LAUNCH_PAGE = SITE + "/projects/7/shell?tab=2"


# Which requests come from another web site: origin.is_cross_site, origin.is_foreign_navigation


def dummy_request(method="GET", **headers):
    request = testing.DummyRequest(method=method, headers=headers)
    request.host_url = SITE
    return request


@pytest.mark.parametrize(
    "headers, cross_site",
    [
        ({"Origin": "http://localhost"}, False),
        ({"Origin": "null", "Referer": "http://localhost/notebook/tree"}, True),
        ({"Origin": "null"}, True),
        ({"Origin": "http://evil.example", "Referer": "http://localhost/"}, True),
        ({"Referer": "http://localhost/notebook/tree"}, False),
        ({"Referer": "http://evil.example/"}, True),
        ({}, True),
        ({"Origin": "https://ws.example.com"}, False),
    ],
)
def test_unsafe_request_origin(headers, cross_site):
    """Referer counts only when there is no Origin at all; Origin: null is foreign whatever Referer says."""
    assert is_cross_site(dummy_request("POST", **headers), ALTERNATIVE_DOMAIN) is cross_site


@pytest.mark.parametrize(
    "method, headers, cross_site",
    [
        ("GET", {"Origin": "http://evil.example"}, False),
        ("HEAD", {}, False),
        ("OPTIONS", {"Origin": "null"}, False),
        ("GET", {"Upgrade": "websocket", "Origin": "http://evil.example"}, True),
        ("GET", {"Upgrade": "WebSocket"}, True),
        ("GET", {"Upgrade": "websocket", "Origin": "http://localhost"}, False),
        ("DELETE", {"Referer": "http://localhost/notebook/tree"}, False),
        ("PUT", {"Origin": "HTTP://LOCALHOST"}, False),
        ("PATCH", {"Origin": "http://localhost:8080"}, True),
    ],
)
def test_safe_methods_pass_and_websocket_handshakes_are_checked(method, headers, cross_site):
    """A GET changes nothing, but a websocket handshake is a GET that browsers send cross-site unchecked."""
    assert is_cross_site(dummy_request(method, **headers), None) is cross_site


@pytest.mark.parametrize(
    "headers, foreign",
    [
        ({}, False),
        ({"Sec-Fetch-Site": "none"}, False),
        ({"Sec-Fetch-Site": "same-origin", "Referer": "http://localhost/items/1"}, False),
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({"Sec-Fetch-Site": "same-site", "Referer": "http://intranet.localhost/"}, True),
        ({"Sec-Fetch-Site": "same-site", "Referer": "https://ws.example.com/notebook/tree"}, False),
        ({"Referer": "http://evil.example/"}, True),
        ({"Referer": "http://localhost/"}, False),
        ({"Origin": "null"}, True),
    ],
)
def test_foreign_navigation(headers, foreign):
    assert is_foreign_navigation(dummy_request(**headers), ALTERNATIVE_DOMAIN) is foreign


def test_foreign_navigation_without_an_alternative_domain():
    """The alternative domain counts as the site's own only when one is set."""
    referer = {"Sec-Fetch-Site": "same-site", "Referer": ALTERNATIVE_DOMAIN + "/notebook/tree"}
    assert is_foreign_navigation(dummy_request(**referer), None) is True
    assert is_foreign_navigation(dummy_request(**referer), ALTERNATIVE_DOMAIN) is False


# What the framework adds to the site's context: views.fill_context_defaults


@pytest.fixture
def config(tmp_path):
    """A registry with the notebook's routes, as a site that includes pyramid_notebook has them."""
    configurator = testing.setUp(settings={PREFIX + "notebook_folder": str(tmp_path / "notebooks")})
    configurator.add_route(SHUTDOWN_ROUTE, "/notebook/shutdown")
    configurator.add_route(PROXY_ROUTE, "/notebook/*remainder")
    yield configurator
    testing.tearDown()


def launch_request(config, **settings) -> testing.DummyRequest:
    """A request for the launch page, on a registry with these ``pyramid_notebook.*`` settings."""
    raw = dict(config.get_settings(), **{PREFIX + name: value for name, value in settings.items()})
    config.registry.notebook_settings = parse_settings(raw)
    request = testing.DummyRequest(path="/projects/7/shell", params={"tab": "2"})
    request.host_url = request.application_url = SITE
    request.url = LAUNCH_PAGE
    return request


def test_defaults_without_a_websocket_proxy_send_websockets_straight_to_the_notebook(config):
    """Development under pserve: the daemon fills in ``websocket_url`` with its own port."""
    context = fill_context_defaults(launch_request(config), NotebookContext())
    assert context.notebook_path == "/notebook/"
    assert context.allow_origin == SITE
    assert context.direct_websockets is True
    assert context.websocket_url == ""
    assert context.shutdown_url == SITE + "/notebook/shutdown"
    assert context.launch_url == LAUNCH_PAGE
    assert re.fullmatch(r"[0-9a-f]{16}", context.context_hash)
    assert context.context_hash == context.compute_hash()


def test_defaults_with_a_websocket_proxy_keep_websockets_on_the_page_origin(config):
    request = launch_request(config, websocket_proxy="pyramid_notebook.uwsgi.serve_websocket")
    context = fill_context_defaults(request, NotebookContext())
    assert context.direct_websockets is False
    assert context.websocket_url == ""
    assert context.allow_origin == SITE


@pytest.mark.parametrize(
    "alternative_domain, websocket_url",
    [("https://ws.example.com", "wss://ws.example.com/notebook/"), ("http://127.0.0.1:8001", "ws://127.0.0.1:8001/notebook/")],
)
def test_defaults_with_an_alternative_domain(config, alternative_domain, websocket_url):
    request = launch_request(
        config, websocket_proxy="pyramid_notebook.uwsgi.serve_websocket", alternative_domain=alternative_domain
    )
    context = fill_context_defaults(request, NotebookContext())
    assert context.allow_origin == alternative_domain
    assert context.websocket_url == websocket_url
    assert context.direct_websockets is False
    assert context.notebook_path == "/notebook/"


def test_without_a_shutdown_route_there_is_no_shutdown_url(tmp_path):
    config = testing.setUp(settings={PREFIX + "notebook_folder": str(tmp_path)})
    try:
        config.add_route(PROXY_ROUTE, "/shells/*remainder")
        context = fill_context_defaults(launch_request(config), NotebookContext())
        assert context.shutdown_url == ""
        assert context.notebook_path == "/shells/"
    finally:
        testing.tearDown()


def test_the_sites_fields_are_kept_and_a_run_cannot_be_chosen(config):
    site_context = NotebookContext(greeting="Hello", extra={"project": 7})
    site_context.add_script("a = 1")
    context = fill_context_defaults(launch_request(config), site_context)
    assert (context.greeting, context.extra) == ("Hello", {"project": 7})
    assert "a = 1" in context.startup
    from_dict = fill_context_defaults(launch_request(config), {"greeting": "Hello", "token": "chosen", "http_port": 1})
    assert from_dict.greeting == "Hello"
    assert (from_dict.token, from_dict.http_port) == ("", None), "a site cannot choose a run's token or port"


def test_the_hash_follows_what_the_notebook_holds_not_where_it_was_launched_from(config):
    first = fill_context_defaults(launch_request(config), NotebookContext(greeting="Hello"))
    request = launch_request(config)
    request.url = SITE + "/another/page"
    second = fill_context_defaults(request, NotebookContext(greeting="Hello"))
    other = fill_context_defaults(launch_request(config), NotebookContext(greeting="Bye"))
    assert first.launch_url != second.launch_url
    assert first.context_hash == second.context_hash
    assert other.context_hash != first.context_hash


# What the browser sees of the notebook's headers: proxy.response_headers

UPSTREAM = "http://127.0.0.1:40000"


def upstream_response(headers: list[tuple[str, str]], status: int = 200) -> urllib3.HTTPResponse:
    """The notebook's answer as the proxy receives it, with ``headers`` in this order (repeats kept)."""
    header_dict = urllib3.HTTPHeaderDict()
    for name, value in headers:
        header_dict.add(name, value)
    return urllib3.HTTPResponse(body=io.BytesIO(b""), headers=header_dict, status=status, preload_content=False)


@pytest.mark.parametrize(
    "location, rewritten",
    [
        (UPSTREAM + "/notebook/tree?x=1", "/notebook/tree?x=1"),
        (UPSTREAM, "/"),
        ("/notebook/login", "/notebook/login"),
        ("https://elsewhere.example/page", "https://elsewhere.example/page"),
    ],
)
def test_redirects_to_the_notebook_stay_on_the_site(location, rewritten):
    assert response_headers(upstream_response([("Location", location)], 302), UPSTREAM) == [("Location", rewritten)]


def test_hop_by_hop_headers_and_the_notebooks_cookies_stay_behind():
    headers = [
        ("Content-Type", "application/json"),
        ("Connection", "keep-alive"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("Trailer", "Expires"),
        ("Upgrade", "h2c"),
        ("Proxy-Authenticate", "Basic"),
        ("TE", "trailers"),
        ("Set-Cookie", "_xsrf=secret; Path=/"),
        ("SET-COOKIE", "username-127-0-0-1-40000=token; Path=/"),
        ("Content-Encoding", "gzip"),
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", "no-store"),
        ("Cache-Control", "no-cache"),
    ]
    assert response_headers(upstream_response(headers), UPSTREAM) == [
        ("Content-Type", "application/json"),
        ("Content-Encoding", "gzip"),
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", "no-store"),
        ("Cache-Control", "no-cache"),
    ]


# What including the package sets up: pyramid_notebook.includeme


class Test_includeme(unittest.TestCase):
    """``config.include("pyramid_notebook")`` reads the settings once and puts what the views need on the registry."""

    def setUp(self):
        self.folder = tempfile.TemporaryDirectory()
        self.notebook_folder = Path(self.folder.name) / "notebooks"
        self.config = testing.setUp(
            settings={
                PREFIX + "notebook_folder": str(self.notebook_folder),
                PREFIX + "min_port": "21000",
                PREFIX + "port_range": "200",
                PREFIX + "idle_timeout": "600",
            }
        )
        # testing.setUp commits each action at once: the session factory the
        # library's CSRF check looks for must come first.
        self.config.set_session_factory(SignedCookieSessionFactory("test-includeme-secret"))

    def tearDown(self):
        testing.tearDown()
        self.folder.cleanup()

    def _callFUT(self, config):
        from pyramid_notebook import includeme

        return includeme(config)

    def test_it_puts_the_settings_and_the_manager_on_the_registry(self):
        self._callFUT(self.config)
        registry = self.config.registry
        self.assertIsInstance(registry.notebook_settings, NotebookSettings)
        self.assertEqual(registry.notebook_settings.notebook_folder, self.notebook_folder)
        self.assertEqual((registry.notebook_settings.min_port, registry.notebook_settings.port_range), (21000, 200))
        self.assertEqual(registry.notebook_settings.idle_timeout, 600)
        self.assertIsInstance(registry.notebook_manager, NotebookManager)
        self.assertEqual(registry.notebook_manager.notebook_folder, self.notebook_folder)
        self.assertTrue(self.notebook_folder.is_dir(), "the notebook folder is made at start-up")

    def test_it_works_through_config_include(self):
        self.config.include("pyramid_notebook")
        self.assertIsInstance(self.config.registry.notebook_manager, NotebookManager)

    def test_a_bad_setting_stops_the_site_naming_the_setting(self):
        self.config.registry.settings[PREFIX + "kill_timeout"] = "soon"
        with self.assertRaisesRegex(ConfigurationError, PREFIX + "kill_timeout"):
            self._callFUT(self.config)
        self.assertFalse(hasattr(self.config.registry, "notebook_manager"), "nothing half made")

    def test_a_missing_notebook_folder_is_refused(self):
        del self.config.registry.settings[PREFIX + "notebook_folder"]
        with self.assertRaisesRegex(ConfigurationError, PREFIX + "notebook_folder"):
            self._callFUT(self.config)

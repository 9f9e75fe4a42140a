"""``alternative_domain`` under a real uWSGI: notebook pages and websockets come from the other origin.

uWSGI listens on two ports of 127.0.0.1; the second port's origin is the
alternative domain.  Cookies do not tell ports apart, so the login carries
over, as it would with a cookie set for a parent domain.
"""
import pytest
import websocket

from pyramid_notebook.waiting import wait_for
from tests.support.login import cookie_header, log_in_session
from tests.support.servers import free_port
from tests.support.uwsgi_site import running_uwsgi
from tests.support.ws_client import KernelSocket, channels_path, open_websocket


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    alternative_port = free_port()
    alternative = "http://127.0.0.1:{}".format(alternative_port)
    with running_uwsgi(
        tmp_path_factory.mktemp("uwsgi-alternative"),
        extra_args=["--http-socket", "127.0.0.1:{}".format(alternative_port)],
        settings={"pyramid_notebook.alternative_domain": alternative},
    ) as site:
        yield site, alternative


def test_notebook_and_websockets_come_from_the_alternative_domain(sites):
    site, alternative = sites
    user = log_in_session(site.base, "user")
    launch = user.get(site.base + "/shell2", allow_redirects=False, timeout=30)
    assert launch.status_code == 302
    assert launch.headers["Location"].startswith(alternative + "/notebook/notebooks/default-")

    def state():
        return user.get(alternative + "/notebook/_pyramid_notebook/status", timeout=10).json()["state"]

    assert wait_for(lambda: state() != "starting", 60)
    assert state() == "running"
    page = user.get(launch.headers["Location"], timeout=30)
    assert '"wsUrl": "{}/notebook/"'.format(alternative.replace("http:", "ws:")) in page.text

    kernel = user.post(
        alternative + "/notebook/api/kernels", json={"name": "python3"}, headers={"Origin": alternative}, timeout=60
    )
    assert kernel.status_code == 201
    url = alternative.replace("http:", "ws:") + channels_path(kernel.json()["id"])
    ws = open_websocket(url, {"Cookie": cookie_header(user)}, origin=alternative)
    try:
        assert KernelSocket(ws, None).execute("print(a + b)")["stdout"] == "foobar\n"
    finally:
        ws.close()

    with pytest.raises(websocket.WebSocketBadStatusException, match="403"):
        open_websocket(url, {"Cookie": cookie_header(user)}, origin="http://evil.example")
    refused = user.post(
        alternative + "/notebook/api/kernels", json={}, headers={"Origin": "http://evil.example"}, timeout=30
    )
    assert refused.status_code == 403

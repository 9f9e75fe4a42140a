"""The proxy's kept-alive connections to a notebook, against a stand-in notebook on a local socket."""
import re
import socket
import threading

import pytest
import urllib3

from pyramid_notebook.proxy import send_upstream


class ClosingUpstream:
    """A notebook stand-in on localhost that closes its first kept-alive connection when a second request comes.

    As a notebook does when it ends an idle connection just as the proxy
    sends a request on it.  Later connections answer once and close.
    """

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                connection, _address = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with connection:
                self.read_request(connection)
                if self.connections == 1:
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nkept")
                    self.read_request(connection)
                else:
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfresh")

    @staticmethod
    def read_request(connection: socket.socket) -> None:
        received = b""
        while b"\r\n\r\n" not in received:
            received += connection.recv(65536)
        head, _, body = received.partition(b"\r\n\r\n")
        length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
        while length and len(body) < int(length.group(1)):
            body += connection.recv(65536)

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in the thread
        self.listener.close()
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.fixture
def closing_upstream():
    upstream = ClosingUpstream()
    pool = urllib3.HTTPConnectionPool("127.0.0.1", upstream.port, maxsize=1, retries=False)
    yield upstream, pool
    pool.close()
    upstream.close()


def test_a_get_on_a_connection_the_notebook_closed_is_sent_again(closing_upstream):
    upstream, pool = closing_upstream
    assert send_upstream(pool, "GET", "/notebook/api/status", None, {}, 5).read() == b"kept"
    answer = send_upstream(pool, "GET", "/notebook/api/status", None, {}, 5)
    assert answer.read() == b"fresh", "sent again on a new connection"
    assert upstream.connections == 2


def test_a_request_with_a_body_is_never_sent_twice(closing_upstream):
    upstream, pool = closing_upstream
    assert send_upstream(pool, "GET", "/notebook/api/status", None, {}, 5).read() == b"kept"
    with pytest.raises(urllib3.exceptions.ProtocolError):
        send_upstream(pool, "POST", "/notebook/api/kernels", b"{}", {"Content-Length": "2"}, 5)
    assert upstream.connections == 1, "the notebook may have acted on it: the browser decides"

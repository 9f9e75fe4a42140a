"""Stop the notebook server without cutting off the requests it is answering.

Jupyter's own stop (on SIGTERM, or ``ServerApp.stop()``) shuts the kernels
down and ends the event loop at once.  A save in progress then finishes on
disk, but its answer never leaves (the site's proxy says 502 although the new
version was saved), and the backup copy Jupyter keeps during a save is left
behind.  Here a stop first closes the listening socket, then lets the
requests in flight finish and their answers go out (for at most
``grace`` seconds), and only then lets Jupyter shut the kernels down.

Requests are counted from their headers (a large upload counts while it
arrives) until their response has been written.  Websocket connections never
finish by themselves and are not counted.
"""
import asyncio
import logging
import signal
import time

from tornado import httputil

logger = logging.getLogger(__name__)

#: Longest wait for requests in flight; the kernels' shutdown comes after it,
#: within the stop command's grace period (processes.STOP_GRACE_SECONDS).
REQUEST_GRACE_SECONDS = 5.0

#: How often a stopping server checks whether its requests have finished.
CHECK_INTERVAL = 0.05


def is_websocket_upgrade(headers: httputil.HTTPHeaders) -> bool:
    return headers.get("Upgrade", "").lower() == "websocket"


class InFlightRequests(httputil.HTTPServerConnectionDelegate):
    """Wraps the web application as the HTTP server's delegate, counting the requests it is answering.

    A request is in flight from its headers until its handler has finished
    and the answer has left the write buffer, or until the client goes away.
    """

    def __init__(self, application):
        self.application = application
        self.active = set()
        self.writing = set()

    def start_request(self, server_conn, request_conn) -> httputil.HTTPMessageDelegate:
        return _CountedRequest(self, self.application.start_request(server_conn, request_conn), request_conn)

    def on_close(self, server_conn) -> None:
        self.application.on_close(server_conn)

    def began(self, request_conn) -> None:
        self.active.add(request_conn)

    def answered(self, request_conn) -> None:
        """The handler finished; the answer may still be on its way out."""
        self.active.discard(request_conn)
        self.writing = {connection for connection in self.writing if _still_writing(connection)}
        if _still_writing(request_conn):
            self.writing.add(request_conn)

    def abandoned(self, request_conn) -> None:
        self.active.discard(request_conn)
        self.writing.discard(request_conn)

    def count(self) -> int:
        """Requests being received, handled or answered right now."""
        self.writing = {connection for connection in self.writing if _still_writing(connection)}
        return len(self.active | self.writing)


def _still_writing(request_conn) -> bool:
    stream = getattr(request_conn, "stream", None)
    return stream is not None and not stream.closed() and stream.writing()


class _CountedRequest(httputil.HTTPMessageDelegate):
    """One request, passed on to the application's own delegate."""

    def __init__(self, requests: InFlightRequests, delegate: httputil.HTTPMessageDelegate, request_conn):
        self.requests = requests
        self.delegate = delegate
        self.request_conn = request_conn

    def headers_received(self, start_line, headers):
        if not is_websocket_upgrade(headers):
            self.requests.began(self.request_conn)
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk):
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()

    def on_connection_close(self) -> None:
        self.requests.abandoned(self.request_conn)
        self.delegate.on_connection_close()


class GracefulStop:
    """Stops a running jupyter_server ``ServerApp`` after its requests in flight, on SIGTERM or when asked."""

    def __init__(self, server, grace: float = REQUEST_GRACE_SECONDS):
        self.server = server
        self.grace = grace
        self.requests = InFlightRequests(server.web_app)
        self.stopping = False

    def install(self) -> None:
        """Count the server's requests and take over SIGTERM from Jupyter; call once the server is initialised."""
        self.server.http_server.request_callback = self.requests
        settings = self.server.web_app.settings
        log_request = settings["log_function"]

        def log_and_count(handler) -> None:
            self.requests.answered(handler.request.connection)
            log_request(handler)

        settings["log_function"] = log_and_count
        # asyncio runs the stop in the loop, between two callbacks, and wakes
        # the loop to do so.  A plain signal handler would run in the middle
        # of whatever the loop was doing (a save, say), and a callback it
        # added would wait for the loop's next timer.
        self.server.io_loop.asyncio_loop.add_signal_handler(signal.SIGTERM, self.stop, "SIGTERM")

    def stop(self, why: str) -> None:
        """Begin stopping (once): refuse new connections, finish the requests in flight, then stop Jupyter."""
        if self.stopping:
            return
        self.stopping = True
        logger.info("Stopping the notebook server (%s)", why)
        self.server.http_server.stop()
        self.server.io_loop.add_callback(self._finish_requests_then_stop)

    async def _finish_requests_then_stop(self) -> None:
        deadline = time.monotonic() + self.grace
        while self.requests.count() and time.monotonic() < deadline:
            await asyncio.sleep(CHECK_INTERVAL)
        left = self.requests.count()
        if left:
            logger.warning("%d requests still unfinished after %.0f s: stopping anyway", left, self.grace)
        self.server.stop()

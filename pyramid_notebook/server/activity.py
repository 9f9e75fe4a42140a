"""The dead man switch: end a notebook nobody uses.

Jupyter's own idea of activity counts every API request, and an open
Notebook 7 tab polls the API every few seconds, so a tab left open in a
forgotten browser would keep a notebook alive for ever.  Here use means:

* a request a person causes: any page load, and any API request that can
  change something (saving, starting a kernel, renaming: every method but
  GET and HEAD).  The front end's background polling (GET under ``api/``)
  does not count;
* a kernel doing work: every message a kernel publishes (outputs, busy and
  idle status) moves its activity time, and a kernel that is busy right now
  is in use however long it has been computing.

Websocket traffic counts through the kernel: code sent over a kernel's
websocket makes it busy.  Nothing else the browser does on an open tab does.

Kernels count only once a person has used the notebook: the landing
notebook's kernel is started with the server (so that the site's startup
script runs while the browser loads the page), and its start is nobody's use.
"""
import logging
import time
from collections.abc import Callable

from tornado.ioloop import PeriodicCallback
from tornado.web import OutputTransform

logger = logging.getLogger(__name__)

#: Longest time between two checks; short timeouts are checked more often.
MAX_CHECK_INTERVAL = 30.0


def counts_as_use(method: str, path: str, base_url: str) -> bool:
    """True if a request for ``path`` was caused by a person rather than by the page polling."""
    relative = path[len(base_url) :] if path.startswith(base_url) else path.lstrip("/")
    if relative.startswith("static/"):
        return False
    return not (method in ("GET", "HEAD") and relative.startswith("api/"))


class ActivityMonitor:
    """Tracks the last use of one notebook server and stops it after ``idle_timeout`` seconds without any.

    :param server: the running ``jupyter_server`` ServerApp.
    :param idle_timeout: seconds of no use after which the server stops; 0 turns the check off.
    :param on_activity: called with the time of the latest use whenever a check finds a newer one.
    :param on_idle: called once, with the seconds without use, when the server has been idle too
        long; it must stop the server (and may record why first).
    :param clock: the current time, in seconds since the epoch (tests pass their own).
    """

    def __init__(
        self,
        server,
        idle_timeout: float,
        on_activity: Callable[[float], None],
        on_idle: Callable[[float], None],
        clock: Callable[[], float] = time.time,
    ):
        self.server = server
        self.idle_timeout = idle_timeout
        self.on_activity = on_activity
        self.on_idle = on_idle
        self.clock = clock
        self.base_url = server.base_url
        self.started = self.last_use = clock()
        self.reported_use = self.last_use
        #: Whether a person has used the notebook yet (see the module's docstring).
        self.used = False
        self.checks: PeriodicCallback | None = None

    def observe_request(self, request) -> OutputTransform:
        """A tornado transform factory: sees every request the server handles, changes nothing.

        The first use after the start is reported at once rather than at the
        next check: the site asks before it restarts a notebook somebody
        uses, and must not see an opened notebook as unused for half a minute.
        """
        if counts_as_use(request.method, request.path, self.base_url):
            first_use = not self.used
            self.used = True
            self.last_use = self.clock()
            if first_use:
                self.server.io_loop.add_callback(self.check)
        return OutputTransform(request)

    def kernel_use(self) -> float:
        """The latest kernel activity, or now if a kernel is busy."""
        latest = 0.0
        kernel_manager = self.server.kernel_manager
        for kernel_id in kernel_manager.list_kernel_ids():
            kernel = kernel_manager.get_kernel(kernel_id)
            if getattr(kernel, "execution_state", None) == "busy":
                return self.clock()
            activity = getattr(kernel, "last_activity", None)
            if activity is not None:
                latest = max(latest, activity.timestamp())
        return latest

    def check(self) -> None:
        """Note the latest use; stop the server if it has been idle too long."""
        if self.used:
            self.last_use = max(self.last_use, self.kernel_use())
        if self.last_use > self.reported_use:
            self.reported_use = self.last_use
            self.on_activity(self.last_use)
        idle = self.clock() - self.last_use
        if self.idle_timeout and idle >= self.idle_timeout:
            logger.warning("No use for %.0f seconds: stopping the notebook", idle)
            if self.checks is not None:
                self.checks.stop()
            self.on_idle(idle)

    def start(self) -> None:
        """Hook into the server's requests and check regularly."""
        self.server.web_app.add_transform(self.observe_request)
        interval = MAX_CHECK_INTERVAL
        if self.idle_timeout:
            interval = min(MAX_CHECK_INTERVAL, max(0.5, self.idle_timeout / 5))
        self.checks = PeriodicCallback(self.check, interval * 1000)
        self.checks.start()

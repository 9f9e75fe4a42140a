"""The ``pyramid_notebook.*`` settings: read once, checked, and named in every error.

A value that cannot work stops start-up with a ConfigurationError that names
the setting, rather than failing later in a user's launch or a proxied request.
"""
import logging
import math
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pyramid.exceptions import ConfigurationError
from pyramid.path import DottedNameResolver

from pyramid_notebook.manager import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_KILL_TIMEOUT,
    DEFAULT_MIN_PORT,
    DEFAULT_PORT_RANGE,
    DEFAULT_START_TIMEOUT,
    NotebookManager,
    default_python,
)

logger = logging.getLogger(__name__)

PREFIX = "pyramid_notebook."

#: The highest TCP port number plus one: ``min_port + port_range`` may reach it, not pass it.
PORT_LIMIT = 65536

#: Jupyter server options the daemon sets itself; one given again in notebook_args would override
#: them, and the manager would then look for the notebook on the wrong port, path or address.
MANAGED_SERVER_OPTIONS = frozenset(
    {"port", "port_retries", "ip", "base_url", "root_dir", "notebook_dir", "token", "allow_origin", "websocket_url"}
)

#: The configurable classes through which the managed options can be set on the command line.
SERVER_OPTION_CLASSES = frozenset({"", "ServerApp", "NotebookApp", "JupyterNotebookApp", "IdentityProvider"})

#: Longest upstream_timeout: a day is already more than any notebook should take to answer, and
#: socket timeouts past about 9.2e9 seconds overflow (every proxied request would then fail).
MAX_UPSTREAM_TIMEOUT = 24 * 3600

#: Ports an origin has when it names none; a browser's Origin header leaves them out.
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class NotebookSettings:
    """The checked ``pyramid_notebook.*`` settings; each field is the setting of the same name."""

    #: Folder of the users' work folders (pid file, context file, logs, notebooks); made and write-tested at start-up.
    notebook_folder: Path
    #: Seconds after which a notebook ends itself, used or not: the hard limit (default 3600, at least 1).
    kill_timeout: int
    #: Seconds without use after which a notebook ends itself; 0 turns this off (default 1800).
    idle_timeout: float
    #: First localhost port handed out to notebooks (default 28000, 1024 to 65535); best below the ephemeral ports.
    min_port: int
    #: How many ports from min_port on may be used: the most notebooks at once (default 1000, at least 1).
    port_range: int
    #: Seconds a new notebook may take to answer before its start counts as failed (default 60, at least 1).
    start_timeout: float
    #: The view callable that carries websockets (e.g. pyramid_notebook.uwsgi.serve_websocket), or None in development.
    websocket_proxy: object
    #: ``scheme://host[:port]`` that serves notebook pages and websockets instead of the site's own, or None.
    alternative_domain: str | None
    #: Absolute path of the Python that runs the notebook daemons and kernels (default: this environment's).
    python: str
    #: Extra command line arguments for every notebook server, split as a shell would (default none).
    notebook_args: tuple[str, ...]
    #: Most proxied HTTP requests one user may have in flight in one web process; more get 503 (default 4, at least 1).
    max_user_requests: int
    #: Seconds the proxy waits for a notebook to connect or send its next chunk before 504 (default 30, at most 86400).
    upstream_timeout: float
    #: A renderer (template) for the library's own pages, e.g. ``myapp:templates/notebook_page.jinja2``; it gets
    #: ``title``, ``content`` and ``back_url``.  Empty (the default) for plain built-in pages.
    page_renderer: str | None = None


def _text(settings: dict, name: str) -> str:
    """The setting as stripped text; empty when it is missing or blank."""
    raw = settings.get(PREFIX + name)
    return "" if raw is None else str(raw).strip()


def _whole_number(settings: dict, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    """An integer setting within ``[minimum, maximum]``."""
    raw = settings.get(PREFIX + name, default)
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigurationError("{}{} must be a whole number, got {!r}".format(PREFIX, name, raw)) from None
    if value < minimum:
        raise ConfigurationError("{}{} must be at least {}, got {!r}".format(PREFIX, name, minimum, raw))
    if maximum is not None and value > maximum:
        raise ConfigurationError("{}{} must be at most {}, got {!r}".format(PREFIX, name, maximum, raw))
    return value


def _seconds(
    settings: dict,
    name: str,
    default: float,
    minimum: float,
    minimum_allowed: bool = True,
    maximum: float | None = None,
) -> float:
    """A finite number of seconds: at least ``minimum`` (above it, unless ``minimum_allowed``), at most ``maximum``."""
    raw = settings.get(PREFIX + name, default)
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ConfigurationError("{}{} must be a number of seconds, got {!r}".format(PREFIX, name, raw)) from None
    if not math.isfinite(value):
        raise ConfigurationError("{}{} must be a finite number of seconds, got {!r}".format(PREFIX, name, raw))
    if value < minimum or (value == minimum and not minimum_allowed):
        raise ConfigurationError(
            "{}{} must be {} {:g} seconds, got {!r}".format(
                PREFIX, name, "at least" if minimum_allowed else "more than", minimum, raw
            )
        )
    if maximum is not None and value > maximum:
        raise ConfigurationError("{}{} must be at most {:g} seconds, got {!r}".format(PREFIX, name, maximum, raw))
    return value


def _notebook_folder(settings: dict) -> Path:
    """The notebook folder, made if missing, and proven writable by creating and deleting a file in it."""
    raw = _text(settings, "notebook_folder")
    if not raw:
        raise ConfigurationError(
            "{}notebook_folder is not set: name a folder for the users' notebooks, e.g. {}".format(
                PREFIX, Path(tempfile.gettempdir()) / "pyramid_notebook"
            )
        )
    folder = Path(raw).absolute()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except FileExistsError:
        raise ConfigurationError("{}notebook_folder {} is a file, not a folder".format(PREFIX, folder)) from None
    except (OSError, ValueError) as error:
        raise ConfigurationError(
            "{}notebook_folder {!r} cannot be created or written: {}".format(PREFIX, raw, error)
        ) from None
    return folder


def _port_settings(settings: dict) -> tuple[int, int]:
    """``min_port`` and ``port_range``, whose ports must all exist."""
    min_port = _whole_number(settings, "min_port", DEFAULT_MIN_PORT, minimum=1024, maximum=PORT_LIMIT - 1)
    port_range = _whole_number(settings, "port_range", DEFAULT_PORT_RANGE, minimum=1)
    if min_port + port_range > PORT_LIMIT:
        raise ConfigurationError(
            "{0}min_port + {0}port_range must not pass {1}, got {2} + {3}: the last port would be {4}".format(
                PREFIX, PORT_LIMIT, min_port, port_range, min_port + port_range - 1
            )
        )
    return min_port, port_range


def _origin(settings: dict, name: str) -> str | None:
    """An origin as browsers send it (lower case, no default port), or None when the setting is empty."""
    raw = _text(settings, name)
    if not raw:
        return None
    problem = "must be a scheme and host such as https://ws.example.com, without path, query or user name"
    parts = urlsplit(raw)
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError("{}{} has a bad port: {!r}".format(PREFIX, name, raw)) from None
    if (
        parts.scheme not in DEFAULT_PORTS
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
        or any(character.isspace() for character in raw)
    ):
        raise ConfigurationError("{}{} {}, got {!r}".format(PREFIX, name, problem, raw))
    host = "[{}]".format(parts.hostname) if ":" in parts.hostname else parts.hostname
    if port is not None and port != DEFAULT_PORTS[parts.scheme]:
        host = "{}:{}".format(host, port)
    return "{}://{}".format(parts.scheme, host)


def _websocket_proxy(settings: dict):
    """The websocket view callable named by a dotted name, or None when the setting is empty."""
    name = _text(settings, "websocket_proxy")
    if not name:
        return None
    try:
        proxy = DottedNameResolver().resolve(name)
    except Exception as error:  # Whatever importing the site's module raises, say which setting named it.
        raise ConfigurationError(
            "{}websocket_proxy: cannot import {!r}: {}: {}".format(PREFIX, name, type(error).__name__, error)
        ) from None
    if not callable(proxy):
        raise ConfigurationError("{}websocket_proxy: {!r} is not callable".format(PREFIX, name))
    return proxy


def _python(settings: dict) -> str:
    """The absolute path of an executable Python: the setting's, else this environment's."""
    raw = _text(settings, "python")
    if not raw:
        try:
            return default_python()
        except RuntimeError as error:
            raise ConfigurationError(str(error)) from None
    found = shutil.which(raw)
    if found is None:
        path = Path(raw)
        if os.sep not in raw:
            problem = "is not found on PATH"
        elif not path.exists():
            problem = "does not exist"
        elif path.is_dir():
            problem = "is a folder"
        else:
            problem = "is not executable"
        raise ConfigurationError("{}python {!r} {}".format(PREFIX, raw, problem))
    return os.path.abspath(found)


def _notebook_args(settings: dict) -> tuple[str, ...]:
    """The extra notebook server arguments, split as a shell would, none overriding what the daemon sets."""
    raw = _text(settings, "notebook_args")
    try:
        arguments = tuple(shlex.split(raw))
    except ValueError as error:
        raise ConfigurationError("{}notebook_args cannot be split into arguments: {}".format(PREFIX, error)) from None
    for argument in arguments:
        if not argument.startswith("--"):
            continue
        option = argument[2:].split("=", 1)[0].replace("-", "_")
        owner, _dot, trait = option.rpartition(".")
        if owner in SERVER_OPTION_CLASSES and trait in MANAGED_SERVER_OPTIONS:
            raise ConfigurationError(
                "{}notebook_args: {!r} would override what pyramid_notebook sets itself ({})".format(
                    PREFIX, argument.split("=", 1)[0], ", ".join(sorted(MANAGED_SERVER_OPTIONS))
                )
            )
    return arguments


#: Where Linux says which local ports outgoing connections are given.
EPHEMERAL_PORTS_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def warn_if_ephemeral(min_port: int, port_range: int) -> None:
    """Log a warning if the notebooks' ports overlap the ones the system gives outgoing connections.

    An outgoing connection may take a notebook's port between the moment
    the manager picks it and the moment the server binds it, and the start
    then fails.  Not an error: the range still works, only less reliably.
    """
    try:
        low, high = (int(part) for part in EPHEMERAL_PORTS_FILE.read_text().split())
    except (OSError, ValueError):
        return
    if min_port <= high and min_port + port_range - 1 >= low:
        logger.warning(
            "%smin_port..%sport_range (%d-%d) overlaps the system's ephemeral ports (%d-%d): "
            "outgoing connections may take a notebook's port; choose ports below %d",
            PREFIX, PREFIX, min_port, min_port + port_range - 1, low, high, low,
        )


def parse_settings(settings: dict) -> NotebookSettings:
    """Check the ``pyramid_notebook.*`` settings; a bad one raises ConfigurationError naming it."""
    notebook_folder = _notebook_folder(settings)
    min_port, port_range = _port_settings(settings)
    warn_if_ephemeral(min_port, port_range)
    return NotebookSettings(
        notebook_folder=notebook_folder,
        kill_timeout=_whole_number(settings, "kill_timeout", DEFAULT_KILL_TIMEOUT, minimum=1),
        idle_timeout=_seconds(settings, "idle_timeout", DEFAULT_IDLE_TIMEOUT, minimum=0),
        min_port=min_port,
        port_range=port_range,
        start_timeout=_seconds(settings, "start_timeout", DEFAULT_START_TIMEOUT, minimum=1),
        websocket_proxy=_websocket_proxy(settings),
        alternative_domain=_origin(settings, "alternative_domain"),
        python=_python(settings),
        notebook_args=_notebook_args(settings),
        max_user_requests=_whole_number(settings, "max_user_requests", 4, minimum=1),
        upstream_timeout=_seconds(
            settings, "upstream_timeout", 30, minimum=0, minimum_allowed=False, maximum=MAX_UPSTREAM_TIMEOUT
        ),
        page_renderer=_text(settings, "page_renderer") or None,
    )


def check_page_renderer(settings: NotebookSettings, registry) -> None:
    """Refuse a ``page_renderer`` that no renderer of the site can render (checked once the site is configured)."""
    from pyramid.interfaces import IRendererFactory

    name = settings.page_renderer
    if name is None:
        return
    extension = "." + name.rsplit(".", 1)[1] if "." in name.rsplit("/", 1)[-1] else name
    if registry.queryUtility(IRendererFactory, name=extension) is None:
        raise ConfigurationError(
            "{}page_renderer {!r}: no renderer for {!r} is configured (e.g. config.include('pyramid_jinja2'))".format(
                PREFIX, name, extension
            )
        )


def make_manager(settings: NotebookSettings) -> NotebookManager:
    """The NotebookManager these settings describe."""
    return NotebookManager(
        settings.notebook_folder,
        min_port=settings.min_port,
        port_range=settings.port_range,
        kill_timeout=settings.kill_timeout,
        python=settings.python,
        start_timeout=settings.start_timeout,
        idle_timeout=settings.idle_timeout,
        notebook_args=settings.notebook_args,
    )

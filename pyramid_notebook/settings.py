"""The ``pyramid_notebook.*`` settings: read once, checked, and named in every error."""
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pyramid.exceptions import ConfigurationError
from pyramid.path import DottedNameResolver
from pyramid.settings import aslist

PREFIX = "pyramid_notebook."


@dataclass(frozen=True)
class NotebookSettings:
    """The checked ``pyramid_notebook.*`` settings."""

    notebook_folder: Path
    kill_timeout: int
    idle_timeout: float
    min_port: int
    port_range: int
    start_timeout: float
    #: The view callable that carries websockets, or ``None`` in development.
    websocket_proxy: object
    #: ``scheme://host[:port]`` that serves notebooks instead of the site's own.
    alternative_domain: str | None
    python: str | None
    #: Extra command line arguments for every notebook server.
    notebook_args: tuple[str, ...]


def _number(settings: dict, name: str, default, kind=int, minimum=1):
    raw = settings.get(PREFIX + name, default)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ConfigurationError(
            "{}{} must be a number, got {!r}".format(PREFIX, name, raw)
        ) from None
    if value < minimum:
        raise ConfigurationError("{}{} must be at least {}, got {!r}".format(PREFIX, name, minimum, raw))
    return value


def _origin(settings: dict, name: str) -> str | None:
    raw = (settings.get(PREFIX + name) or "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ConfigurationError(
            "{}{} must be a scheme and host such as https://ws.example.com, got {!r}".format(PREFIX, name, raw)
        )
    return "{}://{}".format(parts.scheme, parts.netloc)


def _websocket_proxy(settings: dict):
    name = (settings.get(PREFIX + "websocket_proxy") or "").strip()
    if not name:
        return None
    try:
        proxy = DottedNameResolver().resolve(name)
    except (ImportError, ValueError) as error:
        raise ConfigurationError(
            "{}websocket_proxy: cannot import {!r}: {}".format(PREFIX, name, error)
        ) from None
    if not callable(proxy):
        raise ConfigurationError("{}websocket_proxy: {!r} is not callable".format(PREFIX, name))
    return proxy


def parse_settings(settings: dict) -> NotebookSettings:
    """Check the ``pyramid_notebook.*`` settings; a bad one raises ConfigurationError naming it."""
    folder = (settings.get(PREFIX + "notebook_folder") or "").strip()
    if not folder:
        raise ConfigurationError(
            "{}notebook_folder is not set: name a folder for the users' notebooks, e.g. {}".format(
                PREFIX, Path(tempfile.gettempdir()) / "pyramid_notebook"
            )
        )
    min_port = _number(settings, "min_port", 40000, minimum=1024)
    port_range = _number(settings, "port_range", 1000)
    if min_port + port_range > 65536:
        raise ConfigurationError(
            "{0}min_port + {0}port_range must not pass 65536, got {1} + {2}".format(PREFIX, min_port, port_range)
        )
    return NotebookSettings(
        notebook_folder=Path(folder).absolute(),
        kill_timeout=_number(settings, "kill_timeout", 3600),
        idle_timeout=_number(settings, "idle_timeout", 1800, kind=float, minimum=0),
        min_port=min_port,
        port_range=port_range,
        start_timeout=_number(settings, "start_timeout", 60, kind=float),
        websocket_proxy=_websocket_proxy(settings),
        alternative_domain=_origin(settings, "alternative_domain"),
        python=(settings.get(PREFIX + "python") or "").strip() or None,
        notebook_args=tuple(aslist(settings.get(PREFIX + "notebook_args") or "")),
    )


def make_manager(settings: NotebookSettings):
    """The NotebookManager these settings describe."""
    from pyramid_notebook.notebookmanager import NotebookManager

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

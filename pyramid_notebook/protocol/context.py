"""The notebook context: what a notebook should hold, and how its current run is going.

One :class:`NotebookContext` travels from the site's launch view through the
manager to the daemon, in the user's context file.  The site fills the first
group of fields (with the ``add_*`` methods, or :mod:`pyramid_notebook.startup`
on a plain dict); ``launch_notebook`` fills in what the framework knows; the
manager and then the daemon complete the second group for each run.

Both sides may read the file at any moment, so every write goes to a
temporary file that is renamed over the old one: a reader sees the old
document or the new one, never half of one.  The file holds the token, so
it is created readable by its owner only.  A file that is missing, cut
short, not JSON or not of this shape reads as ``None``: no notebook can be
trusted to run from it.
"""
import dataclasses
import hashlib
import json
import keyword
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

#: Why a notebook ended, as recorded in ``stopped_reason`` beside ``stopped_at``.
STOPPED_BY_USER = "shut down by its user"
STOPPED_BY_LOGOUT = "its user logged out"
STOPPED_BY_ADMIN = "stopped from the admin page"
STOPPED_BY_CLI = "stopped from the command line"
STOPPED_IDLE = "idle timeout"
STOPPED_HARD_LIMIT = "hard time limit (kill_timeout)"
STOPPED_CONTEXT_CHANGE = "restarted with another context"
STOPPED_CRASH = "the notebook process ended by itself"
STOPPED_START_FAILED = "it did not start"
STOPPED_PID_FILE_DAMAGED = "its pid file was damaged"

#: Bootstraps the site in the kernel from its INI file, as ``pshell`` would
#: (see :mod:`pyramid_notebook.kernel`).  ``{config_file}`` and ``{cwd}`` are
#: filled in as Python string literals.
BOOTSTRAP_SCRIPT = """\
from pyramid_notebook.kernel import bootstrap as _bootstrap

globals().update(_bootstrap({config_file}, cwd={cwd}))
del _bootstrap
"""

BOOTSTRAP_GREETING = """\
The site is loaded from `{config_file}`, as `pshell` loads it:

* **app**: the site's WSGI application
* **request**: a request made for scripts, addressed like the page this notebook was launched from
* **root**: the site's root object
* **registry**: the application registry, with `registry.settings`
* **username**: who launched this notebook (also `request.notebook_username`)
* **commit()** / **abort()**: keep or throw away the changes made through `request.dbsession` \
(the transaction of `request.tm`, with pyramid_tm); both begin the next transaction, and loaded objects stay usable
* and whatever the INI file's `[pshell]` section adds
"""

#: The greeting's first line once the launching user is known.
USERNAME_GREETING = "You are {username}."


def appended(text: str, addition: str) -> str:
    """``text`` with ``addition`` on lines of its own after it."""
    return text + "\n" + addition.strip("\n") + "\n"


def code_span(text: str) -> str:
    """``text`` as a Markdown code span, whatever backticks it holds."""
    fence = "`"
    while fence in text:
        fence += "`"
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return "{0}{1}{2}{1}{0}".format(fence, padding, text)


def bootstrap_parts(
    config_file: str, bootstrap_py: str = BOOTSTRAP_SCRIPT, bootstrap_greeting: str = BOOTSTRAP_GREETING, cwd: str = ""
) -> tuple[str, str]:
    """The startup script and greeting that load the site from ``config_file`` in the kernel."""
    script = bootstrap_py.format(config_file=repr(str(config_file)), cwd=repr(str(cwd)))
    return script, bootstrap_greeting.format(config_file=config_file)


def importable_name(cls: type) -> tuple[str, str] | None:
    """The module and name ``cls`` can be imported by (``from module import name``), or ``None``."""
    module = sys.modules.get(cls.__module__)
    if getattr(module, cls.__name__, None) is cls:
        return cls.__module__, cls.__name__
    return None


def object_parts(
    name: str, model: type, object_id: Any, session: str = "request.dbsession", description: str = ""
) -> tuple[str, str]:
    """The startup script and greeting line that load ``model``'s row ``object_id`` into variable ``name``.

    Raises ValueError naming what is wrong: a name that is no Python
    variable name, a model the kernel could not import, an id that is not
    an int, a string or a tuple of them (a composite key).
    """
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError("add_object: {!r} is not a Python variable name".format(name))
    importable = importable_name(model) if isinstance(model, type) else None
    if importable is None:
        raise ValueError("add_object: {!r} is not a class importable from its module by its name".format(model))
    if not is_literal_id(object_id):
        raise ValueError(
            "add_object: the id of {} must be an int, a str or a tuple of them, got {!r}".format(name, object_id)
        )
    if not isinstance(session, str) or not session.strip():
        raise ValueError("add_object: session must be the Python expression of a session, got {!r}".format(session))
    module, class_name = importable
    script = "from {module} import {cls}\n\n{name} = {session}.get({cls}, {id!r})".format(
        module=module, cls=class_name, name=name, session=session, id=object_id
    )
    greeting = "* **{}**: the {} with id {}, loaded again from the database".format(
        name, code_span(class_name), code_span(repr(object_id))
    )
    if description:
        greeting += ": " + description
    return script, greeting


def is_literal_id(object_id: Any) -> bool:
    """True for a primary key whose ``repr`` reads back as the same value: an int, a str, or a tuple of them."""
    if isinstance(object_id, tuple):
        return bool(object_id) and all(is_literal_id(part) for part in object_id)
    return isinstance(object_id, str) or (isinstance(object_id, int) and not isinstance(object_id, bool))


def sqlalchemy_model_parts(Base) -> tuple[str, str] | None:
    """Imports of every class a SQLAlchemy 2 declarative ``Base`` maps, and the greeting line listing them.

    Only classes importable from their module under their own name are
    included; ``None`` if there are none.
    """
    imports = [found for found in (importable_name(mapper.class_) for mapper in Base.registry.mappers) if found]
    if not imports:
        return None
    imports.sort(key=lambda pair: (pair[1], pair[0]))
    script = "\n".join("from {} import {}".format(module, name) for module, name in imports)
    listed = ", ".join("`{}`".format(name) for _module, name in imports)
    return script, "* **Models**: {}".format(listed)


@dataclass
class NotebookContext:
    """What one user's notebook holds (filled by the site) and its current run (filled by manager and daemon)."""

    # What the site asks for.  Together these make the context hash: two
    # launches with the same values share one running notebook.

    #: Python source every kernel of the notebook runs first.
    startup: str = ""
    #: Markdown at the top of the user's landing notebook.
    greeting: str = ""
    #: Anything else the site put in its context dict, kept as given.
    extra: dict[str, Any] = field(default_factory=dict)
    #: The proxy route's path, the notebook's base URL: the site and the notebook must agree on it.
    notebook_path: str = "/notebook/"
    #: The origin whose pages drive the notebook: the site's, or the alternative domain's.
    allow_origin: str = ""
    #: True when the browser opens its websockets straight to the notebook's
    #: localhost port (development, without a websocket proxy); the daemon
    #: then fills in ``websocket_url`` with its port.
    direct_websockets: bool = False
    #: Where the browser opens the notebook's websockets; empty for the page's own origin.
    websocket_url: str = ""
    #: Where the in-notebook "shut down" button posts.
    shutdown_url: str = ""

    # Where the notebook was launched from: shown to the user and operators,
    # not hashed (one notebook may be launched from many pages).
    launch_url: str = ""
    #: The site's name for the user who launched it (see :meth:`set_username`);
    #: the kernel knows it as ``username``.  Not hashed: a user's notebook is
    #: always that user's.
    username: str = ""
    #: A digest of the fields above; filled in by :meth:`with_hash`.
    context_hash: str = ""

    # The current run: written by the manager when it launches ...
    token: str = field(default="", repr=False)
    http_port: int | None = None
    notebook_name: str = ""
    launched_at: float | None = None
    launcher_pid: int | None = None
    idle_timeout: float = 0
    # ... and by the daemon as it runs.
    pid: int | None = None
    kill_timeout: float | None = None
    work_folder: str = ""
    started: float | None = None
    #: The server listens; ``ready`` follows once the landing notebook's kernel runs.
    listening: bool = False
    ready: bool = False
    last_activity: float | None = None
    # How it ended.
    start_error: str = ""
    stopped_at: float | None = None
    stopped_reason: str = ""

    # Building the startup script and greeting

    def add_script(self, script: str) -> None:
        """Append Python source to what every kernel of the notebook runs at start."""
        self.startup = appended(self.startup, script)

    def add_greeting(self, markdown: str) -> None:
        """Append Markdown to the greeting shown at the top of the notebook."""
        self.greeting = appended(self.greeting, markdown)

    def make_startup(
        self,
        config_file: str,
        bootstrap_py: str = BOOTSTRAP_SCRIPT,
        bootstrap_greeting: str = BOOTSTRAP_GREETING,
        cwd: str = "",
    ) -> None:
        """Make the kernel load the site from its INI file as ``pshell`` does, with ``app``, ``request`` and ``root``.

        The kernel is a separate process: it cannot share the web process's
        objects, so it builds its own from the same configuration.  It also
        applies the INI file's ``[pshell]`` section (its ``setup`` function
        included), begins ``request.tm`` when the site uses pyramid_tm, and
        gets ``username``, ``commit()`` and ``abort()``: see
        :mod:`pyramid_notebook.kernel`.  ``cwd`` is the folder the kernel
        changes to first, for INI files with relative paths.
        """
        script, greeting = bootstrap_parts(config_file, bootstrap_py, bootstrap_greeting, cwd)
        self.add_script(script)
        self.add_greeting(greeting)

    def add_object(
        self, name: str, model: type, object_id: Any, session: str = "request.dbsession", description: str = ""
    ) -> None:
        """Load ``model``'s row ``object_id`` into variable ``name`` in the kernel, and say so in the greeting.

        The object on the page the user launched from cannot travel to the
        kernel, a separate process: its id does, and the kernel fetches it
        again with ``{session}.get(Model, id)``.  ``session`` is the Python
        expression of the session to use in the kernel (by default the site's
        ``request.dbsession``); ``description`` ends the greeting's line.
        """
        script, greeting = object_parts(name, model, object_id, session, description)
        self.add_script(script)
        self.add_greeting(greeting)

    def set_username(self, username: str) -> None:
        """Record who launches the notebook, and start the greeting by telling them who they are.

        The kernel reads it as ``username`` and ``request.notebook_username``.
        Calling it again with the same name changes nothing.
        """
        if username == self.username:
            return
        line = USERNAME_GREETING.format(username=code_span(username))
        if self.username:
            previous = USERNAME_GREETING.format(username=code_span(self.username))
            self.greeting = self.greeting.removeprefix(previous + "\n\n")
        self.username = username
        self.greeting = line + "\n\n" + self.greeting if self.greeting else line + "\n"

    def include_sqlalchemy_models(self, Base) -> None:
        """Import every class mapped by a SQLAlchemy 2 declarative ``Base`` into the notebook, by its own name."""
        parts = sqlalchemy_model_parts(Base)
        if parts is not None:
            self.add_script(parts[0])
            self.add_greeting(parts[1])

    # Identity

    def site_fields(self) -> dict[str, Any]:
        """The fields the site asked for: what the hash covers."""
        return {name: getattr(self, name) for name in SITE_FIELDS}

    def compute_hash(self) -> str:
        """A digest of the site's fields that is the same in every process.

        Python's ``hash()`` of a string differs between interpreter runs, so
        two web workers would each think the other's notebook had a
        different context and restart it.  A digest of canonical JSON does not.
        """
        canonical = json.dumps(self.site_fields(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def with_hash(self) -> "NotebookContext":
        """This context with ``context_hash`` filled in, unless the site set one of its own."""
        return self if self.context_hash else dataclasses.replace(self, context_hash=self.compute_hash())

    def default_notebook_name(self) -> str:
        """The file name of the notebook a user lands in for this context."""
        return "default-{}.ipynb".format(self.context_hash or "default")

    def for_new_run(self) -> "NotebookContext":
        """The site's part of this context, with every field of a run reset."""
        return NotebookContext(**{name: getattr(self, name) for name in SITE_FIELDS + UNHASHED_SITE_FIELDS})

    # Conversion

    @classmethod
    def from_site(cls, context: "NotebookContext | Mapping[str, Any]") -> "NotebookContext":
        """A context from what a site's launch view built: a NotebookContext, or a dict as the 2015 API had.

        Keys of a dict that are no field of the site's part go to ``extra``;
        keys of a run (a token, a pid) are dropped: a site cannot choose them.
        """
        if isinstance(context, NotebookContext):
            return context.for_new_run()
        known = set(SITE_FIELDS + UNHASHED_SITE_FIELDS) - {"extra"}
        values = {key: value for key, value in context.items() if key in known}
        extra = context.get("extra") or {}
        if not isinstance(extra, Mapping):
            raise ValueError("The notebook context's 'extra' must be a dict, got {!r}".format(extra))
        extra = dict(extra)
        extra.update((key, value) for key, value in context.items() if key not in FIELD_NAMES)
        return cls(**values, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NotebookContext":
        """The context a stored document describes; unknown keys (from another version) are ignored."""
        return cls(**{key: value for key, value in data.items() if key in FIELD_NAMES})

    def write(self, path: Path) -> None:
        """Atomically replace ``path`` with this context as JSON, mode 0600."""
        path = Path(path)
        fd, temporary = tempfile.mkstemp(prefix=".context-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                json.dump(self.to_dict(), stream, indent=2, sort_keys=True, default=str)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    @classmethod
    def read(cls, path: Path) -> "NotebookContext | None":
        """The context stored at ``path``, or ``None`` if it is missing or damaged."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls.from_dict(data) if isinstance(data, dict) else None
        except (OSError, ValueError, TypeError):
            return None


FIELD_NAMES = frozenset(item.name for item in fields(NotebookContext))

#: The site's part of a context, hashed.
SITE_FIELDS = (
    "startup",
    "greeting",
    "extra",
    "notebook_path",
    "allow_origin",
    "direct_websockets",
    "websocket_url",
    "shutdown_url",
)

#: The site's part of a context that is not hashed.
UNHASHED_SITE_FIELDS = ("launch_url", "username", "context_hash")

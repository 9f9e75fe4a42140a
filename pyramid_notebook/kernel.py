"""Code that runs inside a notebook's kernel: the site loaded as ``pshell`` loads it, and transaction helpers.

The startup script that :meth:`NotebookContext.make_startup
<pyramid_notebook.protocol.context.NotebookContext.make_startup>` writes
calls :func:`bootstrap`, which gives the kernel what ``pshell`` gives a
terminal, and a little more:

* ``app``, ``request``, ``root``, ``registry``, ``root_factory``: the site,
  loaded from its INI file;
* whatever the INI file's ``[pshell]`` section adds: its named objects, and
  the variables its ``setup`` function puts in the environment (a generator
  ``setup`` is resumed for its clean-up when the kernel exits);
* ``username``: who launched the notebook, also on the request as
  ``request.notebook_username`` for the site's own code (the kernel's
  ``request.identity`` is ``None``: there is no login cookie in a kernel);
* ``commit()`` and ``abort()``: end the transaction of ``request.tm``
  (pyramid_tm) and begin the next one at once.

The kernel's request is addressed like the page the notebook was launched
from, so ``request.route_url()`` gives the site's own URLs.

With pyramid_tm, ``request.tm`` is begun once the ``[pshell] setup`` has
run (unless it began it itself, as the cookiecutters' setup does), so
``request.dbsession`` works as it does in a view.
"""
import atexit
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pyramid_notebook.protocol.context import NotebookContext
from pyramid_notebook.protocol.workfolder import WorkFolder

#: The attribute of the kernel's request that names who launched the notebook.
USERNAME_ATTRIBUTE = "notebook_username"

#: Passed to the INI file as ``%(__script__)s``, as ``pshell`` does.
SCRIPT_NAME = "pshell"


@dataclass(frozen=True)
class Launch:
    """Who launched this notebook, and the origin (``https://site.example``) of the page they launched it from."""

    username: str | None
    site_origin: str


def read_launch(environ: Mapping[str, str] = os.environ) -> Launch:
    """Who launched the notebook this kernel belongs to, from the notebook's work folder.

    The notebook server points ``IPYTHONDIR`` at ``<work folder>/.ipython``,
    and every kernel inherits it.  The work folder holds the context file
    (with the launching user's name and page) and is itself named after
    the user.  Outside a notebook (no ``IPYTHONDIR``, or no context file
    beside it) nothing is known.
    """
    ipython_dir = environ.get("IPYTHONDIR")
    if not ipython_dir:
        return Launch(username=None, site_origin="")
    work_folder = WorkFolder(Path(ipython_dir).parent)
    context = NotebookContext.read(work_folder.context_file)
    if context is None:  # an IPython of somebody's own, not a notebook's kernel
        return Launch(username=None, site_origin="")
    username = context.username or work_folder.path.name
    origin = ""
    if context.launch_url:
        parts = urlsplit(context.launch_url)
        if parts.scheme and parts.netloc:
            origin = "{}://{}".format(parts.scheme, parts.netloc)
    return Launch(username=username, site_origin=origin)


def setup_context(setup: Callable | None, env: dict) -> AbstractContextManager:
    """``pshell``'s call of its ``setup`` function: a generator runs up to its ``yield`` now, the rest on exit."""
    if setup is None:
        return nullcontext()
    if inspect.isgeneratorfunction(setup):
        return contextmanager(setup)(env)

    @contextmanager
    def call_once(env: dict) -> Iterator[None]:
        setup(env)
        yield

    return call_once(env)


class KernelSite:
    """The site as this kernel loaded it; the request :func:`commit` and :func:`abort` work on."""

    request = None


def bootstrap(config_uri: str, cwd: str = "", username: str | None = None) -> dict[str, Any]:
    """Load the site from ``config_uri`` as ``pshell`` does and return the variables the kernel gets.

    Mirrors ``pyramid.scripts.pshell``: the ``[pshell]`` section's objects
    and ``setup`` function are applied to the environment, the setup's
    clean-up and the request's closer run when the kernel exits.  ``cwd`` is
    the folder to change to first (INI files with relative paths);
    ``username`` overrides who the notebook's work folder says launched it.
    """
    from pyramid.config import global_registries
    from pyramid.interfaces import IRequestFactory
    from pyramid.path import DottedNameResolver
    from pyramid.request import Request
    from pyramid.scripting import prepare
    from pyramid.scripts.common import get_config_loader

    if cwd:
        os.chdir(cwd)
    launch = read_launch()
    username = launch.username if username is None else username
    options = {"__script__": SCRIPT_NAME}
    loader = get_config_loader(config_uri)
    pshell_settings = dict(loader.get_settings("pshell", options))
    app = loader.get_wsgi_app(None, options)

    registry = global_registries.last
    request_factory = registry.queryUtility(IRequestFactory, default=Request)
    blank_options = {"base_url": launch.site_origin} if launch.site_origin else {}
    request = request_factory.blank("/", **blank_options)
    setattr(request, USERNAME_ATTRIBUTE, username)
    env = dict(prepare(request, registry))
    atexit.register(env.pop("closer"))
    env["app"] = app
    env["username"] = username

    resolver = DottedNameResolver(None)
    setup = pshell_settings.pop("setup", None)
    pshell_settings.pop("default_shell", None)
    env.update((name, resolver.maybe_resolve(value)) for name, value in pshell_settings.items())
    setup_manager = setup_context(resolver.maybe_resolve(setup) if setup else None, env)
    setup_manager.__enter__()
    atexit.register(setup_manager.__exit__, None, None, None)

    request = env["request"]
    KernelSite.request = request
    if has_transaction_manager(request):
        begin_if_idle(request.tm)
    env.setdefault("commit", commit)
    env.setdefault("abort", abort)
    return env


def has_transaction_manager(request) -> bool:
    """True when the site includes pyramid_tm, which gives every request a ``tm``."""
    return hasattr(request, "tm")


def begin_if_idle(transaction_manager) -> None:
    """Begin a transaction unless one is under way (an explicit manager has none until begun)."""
    from transaction.interfaces import NoTransaction

    try:
        transaction_manager.get()
    except NoTransaction:
        transaction_manager.begin()


def _transaction_manager(request):
    request = request if request is not None else KernelSite.request
    if request is None:
        raise RuntimeError("No site is loaded in this kernel: pyramid_notebook.kernel.bootstrap() has not run")
    if not has_transaction_manager(request):
        raise RuntimeError(
            "This site has no request.tm (pyramid_tm is not included): commit or roll back its session itself"
        )
    return request.tm


def kernel_sessions(request) -> list:
    """The SQLAlchemy sessions whose objects :func:`commit` and :func:`abort` keep usable: ``request.dbsession``."""
    try:
        from sqlalchemy.orm import Session
    except ImportError:  # a site with pyramid_tm but without SQLAlchemy
        return []
    session = getattr(request, "dbsession", None)
    return [session] if isinstance(session, Session) else []


@contextmanager
def reattaching(sessions: list) -> Iterator[None]:
    """Put back into ``sessions`` the objects that ending the transaction detached from them.

    zope.sqlalchemy closes each session joined to a transaction when the
    transaction ends, which detaches every object loaded in it: the next
    attribute access would raise ``DetachedInstanceError``.  Added back,
    they load their current rows again when next used (the commit or the
    rollback expired them).  Objects the transaction deleted, and new
    objects a rollback threw away, are not detached but deleted or
    transient, and stay out.
    """
    if not sessions:
        yield
        return
    from sqlalchemy import event

    detached = []

    def collect(session, instance) -> None:
        detached.append((session, instance))

    for session in sessions:
        event.listen(session, "persistent_to_detached", collect)
    try:
        yield
    finally:
        for session in sessions:
            event.remove(session, "persistent_to_detached", collect)
        for session, instance in detached:
            session.add(instance)


def roll_back(sessions: list) -> None:
    """Roll the sessions back as SQLAlchemy does, before the transaction manager only closes them.

    zope.sqlalchemy ends an aborted transaction by closing its sessions,
    which leaves each object's unsaved changes on it.  SQLAlchemy's own
    rollback expires them, and makes the objects inserted in the
    transaction transient again, so that none comes back by mistake.
    """
    for session in sessions:
        session.rollback()


def _end_transaction(request, commit_first: bool) -> None:
    """Commit (or only abort) the transaction of ``request.tm``, then begin the next one whatever happened."""
    transaction_manager = _transaction_manager(request)
    sessions = kernel_sessions(request if request is not None else KernelSite.request)
    with reattaching(sessions):
        try:
            if commit_first:
                try:
                    transaction_manager.commit()
                except BaseException:
                    roll_back(sessions)
                    transaction_manager.abort()
                    raise
            else:
                roll_back(sessions)
                transaction_manager.abort()
        finally:
            transaction_manager.begin()


def commit(request=None) -> None:
    """Commit the kernel's transaction and begin the next one, keeping loaded objects usable.

    Like a view under pyramid_tm, the kernel works inside a transaction of
    ``request.tm``; this makes its changes permanent.  The objects loaded
    through ``request.dbsession`` stay in it and load their rows again when
    next used.  If the commit fails (a constraint, a conflict), the
    transaction is rolled back, a new one is begun, and the error is
    raised.  ``request`` defaults to the kernel's.
    """
    _end_transaction(request, commit_first=True)


def abort(request=None) -> None:
    """Throw away the kernel's uncommitted changes and begin a new transaction, keeping loaded objects usable."""
    _end_transaction(request, commit_first=False)

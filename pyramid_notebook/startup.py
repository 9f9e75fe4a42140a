"""Build the notebook context: what every kernel runs first, and what the user is told.

A context is a :class:`~pyramid_notebook.protocol.context.NotebookContext`,
whose ``add_script``, ``add_greeting``, ``make_startup``,
``include_sqlalchemy_models`` and ``add_object`` methods compose it::

    nb = NotebookContext()
    nb.make_startup(config_file)          # app, request, root, registry, [pshell], commit()
    nb.include_sqlalchemy_models(Base)
    nb.add_object("page", Page, page.id)  # page = request.dbsession.get(Page, <id>)
    return launch_notebook(request, username, nb)

What the kernel then has is described in :mod:`pyramid_notebook.kernel`.

The functions here are the 2015 API: the same helpers, taking either a
NotebookContext or a plain dict (``startup`` and ``greeting`` keys).
"""
from collections.abc import MutableMapping

from pyramid_notebook.protocol.context import (
    BOOTSTRAP_GREETING,
    BOOTSTRAP_SCRIPT,
    NotebookContext,
    appended,
    bootstrap_parts,
    object_parts,
    sqlalchemy_model_parts,
)

__all__ = [
    "BOOTSTRAP_GREETING",
    "BOOTSTRAP_SCRIPT",
    "NotebookContext",
    "add_greeting",
    "add_object",
    "add_script",
    "include_sqlalchemy_models",
    "make_startup",
]


def add_script(nb: NotebookContext | MutableMapping, script: str) -> None:
    """Append Python source to what every kernel of the notebook runs at start."""
    if isinstance(nb, NotebookContext):
        nb.add_script(script)
    else:
        nb["startup"] = appended(nb.get("startup", ""), script)


def add_greeting(nb: NotebookContext | MutableMapping, markdown: str) -> None:
    """Append Markdown to the greeting shown at the top of the notebook."""
    if isinstance(nb, NotebookContext):
        nb.add_greeting(markdown)
    else:
        nb["greeting"] = appended(nb.get("greeting", ""), markdown)


def make_startup(
    nb: NotebookContext | MutableMapping,
    config_file: str,
    bootstrap_py: str = BOOTSTRAP_SCRIPT,
    bootstrap_greeting: str = BOOTSTRAP_GREETING,
    cwd: str = "",
) -> None:
    """Make the kernel load the site from its INI file as ``pshell`` does: ``app``, ``request``, ``root``, ``registry``.

    See :meth:`NotebookContext.make_startup`.
    """
    script, greeting = bootstrap_parts(config_file, bootstrap_py, bootstrap_greeting, cwd)
    add_script(nb, script)
    add_greeting(nb, greeting)


def include_sqlalchemy_models(nb: NotebookContext | MutableMapping, Base) -> None:
    """Import every class mapped by a SQLAlchemy 2 declarative ``Base`` into the notebook, by its own name.

    See :meth:`NotebookContext.include_sqlalchemy_models`.
    """
    parts = sqlalchemy_model_parts(Base)
    if parts is not None:
        add_script(nb, parts[0])
        add_greeting(nb, parts[1])


def add_object(
    nb: NotebookContext | MutableMapping,
    name: str,
    model: type,
    object_id,
    session: str = "request.dbsession",
    description: str = "",
) -> None:
    """Load ``model``'s row ``object_id`` into variable ``name`` in the kernel, and say so in the greeting.

    See :meth:`NotebookContext.add_object`.
    """
    script, greeting = object_parts(name, model, object_id, session, description)
    add_script(nb, script)
    add_greeting(nb, greeting)

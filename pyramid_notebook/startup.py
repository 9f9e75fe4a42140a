"""Build the notebook context: what every kernel runs first, and what the user is told.

A context is a plain dict.  ``startup`` is Python source that each kernel of
the notebook runs before the user types anything; ``greeting`` is Markdown
shown at the top of the notebook.  The helpers here append to both, so a
view can compose them::

    nb = {}
    startup.make_startup(nb, config_file)
    startup.include_sqlalchemy_models(nb, Base)
    startup.add_script(nb, "from myapp.models import DBSession as session")
    startup.add_greeting(nb, "* **session**: the SQLAlchemy session")
    return launch_notebook(request, username, nb)
"""
import sys

#: Bootstraps the site in the kernel from its INI file.  ``{config_file}`` and
#: ``{cwd}`` are filled in as Python string literals.
BOOTSTRAP_SCRIPT = """\
import os as _os

if {cwd}:
    _os.chdir({cwd})

from pyramid.paster import bootstrap as _bootstrap

_env = _bootstrap({config_file})
app = _env["app"]
request = _env["request"]
root = _env["root"]
registry = _env["registry"]
"""

BOOTSTRAP_GREETING = """\
The site is loaded from `{config_file}`:

* **app**: the site's WSGI application
* **request**: a request made for scripts, as `pyramid.paster.bootstrap` builds it
* **root**: the site's root object
* **registry**: the application registry, with `registry.settings`
"""


def add_script(nb: dict, script: str) -> None:
    """Append Python source to what every kernel of the notebook runs at start."""
    nb["startup"] = nb.get("startup", "") + "\n" + script.strip("\n") + "\n"


def add_greeting(nb: dict, markdown: str) -> None:
    """Append Markdown to the greeting shown at the top of the notebook."""
    nb["greeting"] = nb.get("greeting", "") + "\n" + markdown.strip("\n") + "\n"


def make_startup(
    nb: dict,
    config_file: str,
    bootstrap_py: str = BOOTSTRAP_SCRIPT,
    bootstrap_greeting: str = BOOTSTRAP_GREETING,
    cwd: str = "",
) -> None:
    """Make the kernel load the site from its INI file, so ``app``, ``request``, ``root`` and ``registry`` exist.

    The kernel is a separate process: it cannot share the web process's
    objects, so it builds its own from the same configuration.  ``cwd`` is
    the folder the kernel changes to first, for INI files with relative paths.
    """
    add_script(nb, bootstrap_py.format(config_file=repr(str(config_file)), cwd=repr(str(cwd))))
    add_greeting(nb, bootstrap_greeting.format(config_file=config_file))


def include_sqlalchemy_models(nb: dict, Base) -> None:
    """Import every class mapped by a SQLAlchemy 2 declarative ``Base`` into the notebook, by its own name.

    Only classes importable from their module under their own name are
    included; the greeting lists them.
    """
    imports = []
    for mapper in Base.registry.mappers:
        model = mapper.class_
        module = sys.modules.get(model.__module__)
        if getattr(module, model.__name__, None) is model:
            imports.append((model.__module__, model.__name__))
    if not imports:
        return
    imports.sort(key=lambda pair: (pair[1], pair[0]))
    add_script(nb, "\n".join("from {} import {}".format(module, name) for module, name in imports))
    listed = ", ".join("`{}`".format(name) for _module, name in imports)
    add_greeting(nb, "* **Models**: {}".format(listed))

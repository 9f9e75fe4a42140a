"""``.. pyramid-notebook-settings::``: the settings reference, read from the settings code itself.

The manual must not drift from the code, so nothing in the reference is
written by hand.  The directive reads
:class:`pyramid_notebook.settings.NotebookSettings`:

* its fields, in their order: each is the setting ``pyramid_notebook.<field>``;
* each field's ``#:`` doc comment (through Sphinx's own ``ModuleAnalyzer``),
  which becomes the setting's description;
* each default, as :func:`pyramid_notebook.settings.parse_settings` gives it
  for a configuration that sets only what is required.

It renders each setting as a ``confval`` (Sphinx's configuration value
directive), so that any page can link to it with
``:confval:`pyramid_notebook.idle_timeout```, and a link to a setting that
no longer exists fails the build.  A doc comment that states a default
(``(default 3600, ...)``) other than the code's also fails the build.
"""
import dataclasses
import math
import re
import tempfile
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)

SETTINGS_MODULE = "pyramid_notebook.settings"

#: A default stated in a doc comment: "(default 3600" or "(default 3600, at least 1)".
STATED_DEFAULT = re.compile(r"\(default (?P<value>[-+0-9.eE]+)\b")


def minimal_settings(folder: str) -> dict:
    """The least a site must set: the notebook folder.  Everything else keeps its default."""
    from pyramid_notebook.settings import PREFIX

    return {PREFIX + "notebook_folder": folder}


def describe_default(value) -> str:
    """A default as reStructuredText for the reference: literal values, words for "nothing" and "this Python"."""
    from pyramid_notebook.manager import default_python

    if value is None or value == ():
        return "empty"
    if isinstance(value, str) and value == default_python():
        return "the Python of the environment the site runs in"
    if isinstance(value, bool):
        return "``{}``".format("true" if value else "false")
    if isinstance(value, (int, float)):
        return "``{:g}``".format(value)
    return "``{}``".format(value)


def stated_default_disagrees(comment: str, value) -> str | None:
    """The default a doc comment states, when it is a number other than ``value``; else None."""
    found = STATED_DEFAULT.search(comment)
    if found is None or not isinstance(value, (int, float)):
        return None
    stated = float(found.group("value"))
    return None if math.isclose(stated, float(value)) else found.group("value")


def settings_reference() -> list[tuple[str, str, str]]:
    """(setting name, default as reST, description) for every field of NotebookSettings, in order."""
    from pyramid_notebook.settings import PREFIX, NotebookSettings, parse_settings

    comments = ModuleAnalyzer.for_module(SETTINGS_MODULE).find_attr_docs()
    with tempfile.TemporaryDirectory(prefix="pyramid-notebook-docs-") as folder:
        required = minimal_settings(folder)
        defaults = parse_settings(required)
    rows = []
    for field in dataclasses.fields(NotebookSettings):
        name = PREFIX + field.name
        lines = comments.get((NotebookSettings.__name__, field.name))
        if not lines or not "".join(lines).strip():
            raise ValueError("{}.NotebookSettings.{} has no #: doc comment".format(SETTINGS_MODULE, field.name))
        description = " ".join(line.strip() for line in lines if line.strip())
        if name in required:
            default = "none: the setting is required"
        else:
            value = getattr(defaults, field.name)
            stated = stated_default_disagrees(description, value)
            if stated is not None:
                logger.warning(
                    "%s: the doc comment says the default is %s, the code gives %s", name, stated, value
                )
            default = describe_default(value)
        rows.append((name, default, description))
    return rows


class NotebookSettingsDirective(SphinxDirective):
    """Renders every ``pyramid_notebook.*`` setting as a ``confval``, from the settings code."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        module = ModuleAnalyzer.for_module(SETTINGS_MODULE)
        self.env.note_dependency(str(Path(module.srcname).resolve()))
        lines = []
        for name, default, description in settings_reference():
            lines += [
                ".. confval:: {}".format(name),
                "   :default: {}".format(default),
                "",
                "   {}".format(description),
                "",
            ]
        container = nodes.container(classes=["pyramid-notebook-settings"])
        source = self.get_source_info()[0]
        nested_parse_with_titles(self.state, StringList(lines, source=source), container)
        return [container]


def setup(app: Sphinx) -> dict:
    """Register the directive; the extension keeps no state, so parallel builds are safe."""
    app.add_directive("pyramid-notebook-settings", NotebookSettingsDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

"""Sphinx configuration of the pyramid_notebook manual: ``make docs`` builds it into docs/_build/html.

The build needs nothing from the internet: the theme is alabaster, which
ships with Sphinx, and no inventory of another project is fetched.  Any
warning fails the build (``-W`` in the Makefile).
"""
import sys
import warnings
from importlib.metadata import version as installed_version
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

# Pyramid still imports pkg_resources; that is no concern of the manual.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

project = "pyramid_notebook"
author = "pyramid_notebook contributors"
copyright = "pyramid_notebook contributors"
release = installed_version("pyramid_notebook")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "notebook_settings",
]

root_doc = "index"
exclude_patterns = ["_build", "requirements.txt"]
templates_path = []
nitpicky = False

# Signatures show the type hints; the public helpers' docstrings say why.
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"undoc-members": False}

html_theme = "alabaster"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_title = "pyramid_notebook {}".format(release)
html_theme_options = {
    "description": "Jupyter Notebook shells inside a Pyramid site",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "230px",
    "show_relbars": True,
}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}
html_show_sourcelink = False

"""``pyramid-notebook``: list and stop the users' notebooks from the command line.

It reads the notebook folder from the site's INI file, just as the site does,
so an operator never has to hunt for processes by hand::

    pyramid-notebook production.ini list
    pyramid-notebook production.ini list --all      # also stopped ones: when, why, launched from where
    pyramid-notebook production.ini stop mikko@example.com
    pyramid-notebook production.ini stop-all
"""

import argparse
import logging
import sys

from pyramid.exceptions import ConfigurationError

from pyramid_notebook.manager import NotebookManager
from pyramid_notebook.protocol.context import STOPPED_BY_CLI
from pyramid_notebook.report import STOPPED_COLUMNS, split_statuses, status_row, stopped_row, text_table
from pyramid_notebook.settings import make_manager, parse_settings


def site_app_name(config_uri: str, app_name: str) -> str:
    """The app section that ``app_name`` names: the application at the end of a ``[pipeline:...]``, if it is one.

    A pipeline section holds no settings of its own (the shipped uwsgi.ini's
    ``main`` puts filters before the site), so reading it would find no
    notebook folder.
    """
    import plaster

    loader = plaster.get_loader(config_uri, protocols=["wsgi"])
    pipeline_section = "pipeline:" + app_name
    if pipeline_section not in loader.get_sections():
        return app_name
    return loader.get_settings(pipeline_section)["pipeline"].split()[-1]


def manager_from_ini(config_uri: str, app_name: str = "main") -> NotebookManager:
    """The NotebookManager the site configured in ``config_uri`` (its app ``app_name``, or the pipeline's app)."""
    from pyramid.paster import get_appsettings

    settings = get_appsettings(config_uri, name=site_app_name(config_uri, app_name))
    return make_manager(parse_settings(settings))


def parser() -> argparse.ArgumentParser:
    """The command line: the site's INI file, then one of ``list``, ``stop USER``, ``stop-all``."""
    parser = argparse.ArgumentParser(prog="pyramid-notebook", description="List and stop the users' notebooks.")
    parser.add_argument("config_uri", help="the site's INI file, e.g. production.ini")
    parser.add_argument("--app-name", default="main", help="the app section in the INI file (default: main)")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="show the running notebooks")
    listing.add_argument(
        "--all",
        action="store_true",
        help="also show notebooks that do not run: when and why they stopped, where they were launched",
    )
    stop = commands.add_parser("stop", help="stop one user's notebook")
    stop.add_argument("user")
    commands.add_parser("stop-all", help="stop every notebook, running or starting")
    return parser


def list_notebooks(manager: NotebookManager, include_stopped: bool) -> str:
    """The running notebooks as a table; with ``include_stopped``, a second of those that do not run."""
    running, stopped = split_statuses(manager.list_notebooks(include_stopped=include_stopped))
    text = text_table([status_row(status) for status in running])
    if include_stopped:
        text += "\n\nNot running:\n" + text_table([stopped_row(status) for status in stopped], STOPPED_COLUMNS)
    return text


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 1 when there was nothing to stop, 2 on bad input."""
    arguments = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        manager = manager_from_ini(arguments.config_uri, arguments.app_name)
    except (ConfigurationError, FileNotFoundError, LookupError) as error:
        sys.stderr.write("pyramid-notebook: {}\n".format(error))
        return 2
    if arguments.command == "list":
        sys.stdout.write(list_notebooks(manager, arguments.all) + "\n")
        return 0
    if arguments.command == "stop":
        try:
            running = manager.is_running(arguments.user)
        except ValueError as error:
            sys.stderr.write("pyramid-notebook: {}\n".format(error))
            return 2
        if not running:
            sys.stderr.write("pyramid-notebook: no notebook runs for {}\n".format(arguments.user))
            return 1
        manager.stop_notebook(arguments.user, reason=STOPPED_BY_CLI)
        sys.stdout.write("Stopped the notebook of {}\n".format(arguments.user))
        return 0
    stopped = manager.stop_all(reason=STOPPED_BY_CLI)
    sys.stdout.write("Stopped {} notebook(s){}\n".format(len(stopped), ": " + ", ".join(stopped) if stopped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The kernel's side of a notebook context, without a notebook: pshell's setup, the transaction, the user, objects.

Each kernel test runs a context's startup script and then some code in a new
Python process, as a kernel would, against the real-shaped app of
``tests/support/realapp`` (SQLite, pyramid_tm's explicit manager).  The
process gets ``IPYTHONDIR`` inside a user's work folder, as the notebook
server gives its kernels, with a context file saying who launched it.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyramid_notebook import kernel, startup
from pyramid_notebook.protocol.context import NotebookContext
from tests.support.realapp.models import Base, Page
from tests.support.realapp.pshell import CLEANUP_MARKER_SETTING
from tests.support.realapp.testing import PAGES, REPOSITORY, page_title, write_ini

#: Seconds a kernel-like process may take to load the app and run the code.
KERNEL_SECONDS = 120

#: The user whose work folder the kernel-like process runs in.
USER = "alice"


def kernel_result(ini: Path, context: NotebookContext, code: str, launch: NotebookContext | None = None):
    """Run the context's startup script, then ``code`` (which sets ``result``), in a new process; return ``result``.

    ``launch`` is written as the user's context file (who launched the
    notebook and from where); by default none is written.
    """
    work_folder = ini.parent / "notebooks" / USER
    ipython_dir = work_folder / ".ipython"
    ipython_dir.mkdir(parents=True, exist_ok=True)
    if launch is not None:
        launch.write(work_folder / "context.json")
    environment = dict(os.environ, IPYTHONDIR=str(ipython_dir), PYTHONPATH=str(REPOSITORY))
    program = context.startup + "\n" + code + "\nimport json as _json\nprint(_json.dumps(result))\n"
    completed = subprocess.run(
        [sys.executable, "-c", program],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=KERNEL_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def site_shell(ini: Path) -> NotebookContext:
    """The context the app's site shell builds."""
    nb = NotebookContext()
    nb.make_startup(str(ini))
    nb.include_sqlalchemy_models(Base)
    return nb


@pytest.fixture
def ini(tmp_path):
    """The app with the cookiecutter's ``[pshell] setup``, on a fresh database."""
    return write_ini(tmp_path)


# pshell's setup


def test_kernel_gets_what_pshell_setup_gives_with_the_transaction_begun(ini):
    result = kernel_result(
        ini,
        site_shell(ini),
        "result = [sorted(name for name in ('app', 'request', 'root', 'registry', 'root_factory', 'tm', 'dbsession',"
        " 'models', 'username', 'commit', 'abort') if name in globals()),"
        " tm is request.tm, dbsession is request.dbsession, models.__name__,"
        " sorted(page.title for page in request.dbsession.query(Page))]",
    )
    names, same_tm, same_session, models_module, titles = result
    assert names == sorted(
        ["app", "request", "root", "registry", "root_factory", "tm", "dbsession", "models", "username"]
        + ["commit", "abort"]
    )
    assert same_tm and same_session
    assert models_module == "tests.support.realapp.models"
    assert titles == sorted(title for _name, title, _body in PAGES)


def test_without_a_pshell_section_request_dbsession_still_works(tmp_path):
    """Under the explicit manager, bootstrap's request has no transaction: the kernel begins one itself."""
    ini = write_ini(tmp_path, pshell={})
    result = kernel_result(
        ini,
        site_shell(ini),
        "result = ['tm' in globals(), request.tm.explicit, request.dbsession.get(Page, 1).title]",
    )
    assert result == [False, True, PAGES[0][1]]


def test_pshell_objects_and_a_generator_setup_closed_when_the_kernel_exits(tmp_path):
    ini = write_ini(
        tmp_path,
        pshell={"setup": "tests.support.realapp.pshell.setup_with_cleanup", "Markup": "markupsafe.Markup"},
    )
    marker = Path(tmp_path / "pshell-cleanup.txt")
    result = kernel_result(
        ini,
        site_shell(ini),
        "result = [setup_style, Markup.__name__, registry.settings[{!r}], {!r} in globals()]".format(
            CLEANUP_MARKER_SETTING, "closer"
        ),
    )
    assert result == ["generator", "Markup", str(marker), False]
    assert marker.read_text() == "closed\n", "the setup's clean-up ran as the process ended"


# Committing and aborting


def test_commit_keeps_objects_usable_and_the_session_going(ini):
    result = kernel_result(
        ini,
        site_shell(ini),
        "from sqlalchemy import inspect\n"
        "page = request.dbsession.query(Page).filter_by(name='welcome').one()\n"
        "page.title = 'Renamed once'\n"
        "commit()\n"
        "first = [page.title, inspect(page).persistent]\n"
        "page.title = 'Renamed twice'\n"
        "commit()\n"
        "result = first + [page.title, request.dbsession.query(Page).count()]",
    )
    assert result == ["Renamed once", True, "Renamed twice", len(PAGES)]
    assert page_title(ini, "welcome") == "Renamed twice"


def test_plain_tm_commit_leaves_objects_detached(ini):
    """Why commit() exists: the explicit manager's own commit closes the session, and begin() does not help."""
    result = kernel_result(
        ini,
        site_shell(ini),
        "page = request.dbsession.get(Page, 1)\n"
        "page.title = 'Renamed'\n"
        "request.tm.commit()\n"
        "request.tm.begin()\n"
        "try:\n"
        "    page.title\n"
        "    result = None\n"
        "except Exception as error:\n"
        "    result = type(error).__name__",
    )
    assert result == "DetachedInstanceError"


def test_abort_restores_rows_and_forgets_new_objects(ini):
    result = kernel_result(
        ini,
        site_shell(ini),
        "from sqlalchemy import inspect\n"
        "page = request.dbsession.get(Page, 1)\n"
        "page.title = 'Not kept'\n"
        "extra = Page(name='extra', title='Extra', body='')\n"
        "request.dbsession.add(extra)\n"
        "request.dbsession.flush()\n"
        "abort()\n"
        "result = [page.title, inspect(extra).transient, request.dbsession.query(Page).count()]\n"
        "commit()",
    )
    assert result == [PAGES[0][1], True, len(PAGES)]
    assert page_title(ini, "welcome") == PAGES[0][1]


def test_failed_commit_rolls_back_begins_again_and_raises(ini):
    result = kernel_result(
        ini,
        site_shell(ini),
        "page = request.dbsession.get(Page, 1)\n"
        "page.title = 'Lost with the failed commit'\n"
        "request.dbsession.add(Page(name='about', title='Duplicate name', body=''))\n"
        "try:\n"
        "    commit()\n"
        "    error = None\n"
        "except Exception as raised:\n"
        "    error = type(raised).__name__\n"
        "after_failure = page.title\n"
        "page.title = 'Kept'\n"
        "commit()\n"
        "result = [error, after_failure, page.title]",
    )
    assert result == ["IntegrityError", PAGES[0][1], "Kept"]
    assert page_title(ini, "welcome") == "Kept"


def test_commit_needs_a_loaded_site_or_pyramid_tm():
    class RequestWithoutTm:
        pass

    with pytest.raises(RuntimeError, match="pyramid_tm"):
        kernel.commit(RequestWithoutTm())
    if kernel.KernelSite.request is None:
        with pytest.raises(RuntimeError, match="bootstrap"):
            kernel.abort()


# Who launched the notebook


def test_kernel_knows_who_launched_it_and_from_which_site(ini):
    launch = NotebookContext(username=USER, launch_url="https://site.example:8443/welcome/shell")
    result = kernel_result(
        ini,
        site_shell(ini),
        "result = [username, request.notebook_username, request.identity,"
        " request.route_url('page', pagename='about')]",
        launch=launch,
    )
    assert result == [USER, USER, None, "https://site.example:8443/about"]


def test_without_a_recorded_name_the_work_folder_names_the_user(ini):
    result = kernel_result(
        ini, site_shell(ini), "result = [username, request.application_url]", launch=NotebookContext()
    )
    assert result == [USER, "http://localhost"]


def test_read_launch_outside_a_notebook_knows_nothing(tmp_path):
    nothing = kernel.Launch(username=None, site_origin="")
    assert kernel.read_launch({}) == nothing
    assert kernel.read_launch({"IPYTHONDIR": str(tmp_path / "home" / ".ipython")}) == nothing


def test_set_username_greets_the_user_once_and_survives_the_context_file(tmp_path):
    nb = NotebookContext(greeting="Hello.\n")
    nb.set_username("alice")
    nb.set_username("alice")
    assert nb.greeting == "You are `alice`.\n\nHello.\n"
    nb.set_username("b`ob")
    assert nb.greeting == "You are ``b`ob``.\n\nHello.\n"
    nb.write(tmp_path / "context.json")
    read = NotebookContext.read(tmp_path / "context.json")
    assert read.username == "b`ob" and read.for_new_run().username == "b`ob"
    assert NotebookContext.from_site({"username": "carol"}).username == "carol"
    assert read.compute_hash() == NotebookContext(greeting=read.greeting).compute_hash(), "the name is not hashed"


# The page shell's object


def test_add_object_fetches_the_page_again_in_the_kernel(ini):
    nb = site_shell(ini)
    nb.add_object("page", Page, 2, description="the page the shell was opened from")
    assert "* **page**: the `Page` with id `2`, loaded again from the database: the page" in nb.greeting
    assert "page = request.dbsession.get(Page, 2)" in nb.startup
    result = kernel_result(ini, nb, "result = [page.title, page in request.dbsession]")
    assert result == [PAGES[1][1], True]


def test_add_object_with_another_session_on_a_2015_dict(ini):
    nb = {}
    startup.make_startup(nb, str(ini))
    startup.add_script(nb, "session = request.dbsession")
    startup.add_object(nb, "about", Page, 2, session="session")
    assert "about = session.get(Page, 2)" in nb["startup"]
    assert "**about**" in nb["greeting"]


@pytest.mark.parametrize(
    "arguments, complaint",
    [
        (("2pages", Page, 1), "not a Python variable name"),
        (("class", Page, 1), "not a Python variable name"),
        (("page", "Page", 1), "not a class importable"),
        (("page", type("Local", (), {}), 1), "not a class importable"),
        (("page", Page, 1.5), "must be an int, a str or a tuple"),
        (("page", Page, True), "must be an int, a str or a tuple"),
        (("page", Page, None), "must be an int, a str or a tuple"),
        (("page", Page, ()), "must be an int, a str or a tuple"),
    ],
)
def test_add_object_refuses_what_the_kernel_could_not_run(arguments, complaint):
    with pytest.raises(ValueError, match=complaint):
        NotebookContext().add_object(*arguments)


def test_add_object_refuses_an_empty_session_expression():
    with pytest.raises(ValueError, match="session"):
        NotebookContext().add_object("page", Page, 1, session=" ")


def test_add_object_accepts_string_and_composite_keys():
    nb = NotebookContext()
    nb.add_object("by_name", Page, "welcome")
    nb.add_object("by_key", Page, (1, "a"))
    assert "by_name = request.dbsession.get(Page, 'welcome')" in nb.startup
    assert "by_key = request.dbsession.get(Page, (1, 'a'))" in nb.startup


def test_a_custom_bootstrap_script_still_gets_the_config_file():
    nb = NotebookContext()
    nb.make_startup("/srv/site.ini", bootstrap_py="config = {config_file}\n", bootstrap_greeting="From {config_file}")
    assert nb.startup.strip() == "config = '/srv/site.ini'"
    assert nb.greeting.strip() == "From /srv/site.ini"

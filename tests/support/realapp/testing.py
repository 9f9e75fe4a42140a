"""The real-shaped app for tests: an INI in a temporary folder, its database, and waitress in-process."""
import os
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from tests.support.demo import ServedSite, serving
from tests.support.realapp.models import Base, Page, User

#: The repository's root: on the kernels' ``PYTHONPATH``, so that they can import this app.
REPOSITORY = Path(__file__).resolve().parents[3]

PASSWORD = "realapp-password"
#: Account names and roles: only admins may open shells.
ACCOUNTS = {"alice": "admin", "bob": "editor"}
#: Page name, title and body.
PAGES = (("welcome", "Welcome", "The front page."), ("about", "About us", "Who we are."))

INI_TEMPLATE = """\
[app:main]
use = call:tests.support.realapp:main
sqlalchemy.url = sqlite:///{folder}/realapp.sqlite
realapp.secret = realapp-test-secret
realapp.pshell_cleanup_marker = {folder}/pshell-cleanup.txt
pyramid_notebook.notebook_folder = {folder}/notebooks
pyramid_notebook.kill_timeout = 600
pyramid_notebook.start_timeout = 60
pyramid_notebook.websocket_proxy =

{pshell}

[server:main]
use = egg:waitress#main
listen = 127.0.0.1:0
"""


#: The ``[pshell]`` section of the cookiecutter: its ``setup`` function.
COOKIECUTTER_PSHELL = {"setup": "tests.support.realapp.pshell.setup"}


def write_ini(folder: Path, pshell: dict[str, str] | None = None) -> Path:
    """The app's INI file in ``folder``, and its database.

    ``pshell`` is the ``[pshell]`` section (the cookiecutter's by default;
    empty to leave the section out).
    """
    folder = Path(folder).resolve()
    pshell = COOKIECUTTER_PSHELL if pshell is None else pshell
    lines = "".join("{} = {}\n".format(key, value) for key, value in pshell.items())
    section = "[pshell]\n" + lines if lines else ""
    path = folder / "realapp.ini"
    path.write_text(INI_TEMPLATE.format(folder=folder, pshell=section), encoding="utf-8")
    initialize_database(folder / "realapp.sqlite")
    return path


def initialize_database(path: Path) -> None:
    """Create the tables, the accounts and the pages, as the cookiecutter's ``initialize_db`` script would."""
    engine = create_engine("sqlite:///{}".format(path))
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        if session.get(User, 1) is None:
            for name, role in ACCOUNTS.items():
                user = User(name=name, role=role)
                user.set_password(PASSWORD)
                session.add(user)
            session.add_all(Page(name=name, title=title, body=body) for name, title, body in PAGES)
    engine.dispose()


def page_title(ini: Path, name: str) -> str:
    """A page's title as the database has it now."""
    engine = create_engine("sqlite:///{}".format(Path(ini).parent / "realapp.sqlite"))
    with Session(engine) as session:
        title = session.query(Page).filter_by(name=name).one().title
    engine.dispose()
    return title


#: The served app as the tests see it.
RealApp = ServedSite


@contextmanager
def kernels_can_import_the_app():
    """Put the repository on ``PYTHONPATH`` while the app runs: its notebooks' kernels load it from its INI file.

    A real site's package is installed; this test app is not.
    """
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), saved]))
    try:
        yield
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


@contextmanager
def running_realapp(folder: Path):
    """The app served by waitress in this process on a free port; every notebook is stopped afterwards."""
    with kernels_can_import_the_app(), serving(write_ini(folder)) as site:
        yield site


def log_in_browser(browser, app: RealApp, name: str, password: str = PASSWORD) -> None:
    """Log in through the app's form; fails unless the next page names the user."""
    from tests.support.chromium import PAGE_SECONDS

    browser.visit(app("/login"))
    browser.fill("name", name)
    browser.fill("password", password)
    browser.find_by_id("login-submit").click()
    assert browser.is_element_present_by_id("current-user", wait_time=PAGE_SECONDS), "login failed"
    assert browser.find_by_id("current-user").text == name

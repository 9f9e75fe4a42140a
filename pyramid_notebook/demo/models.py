"""The demo's database: accounts to log in with and a few rows to look at.

Two kinds of session reach this database.  Web requests get
``request.dbsession``, joined to the request's transaction by pyramid_tm and
zope.sqlalchemy, so a view never commits by hand.  A notebook kernel is a
separate process that bootstraps the site from its INI file and has no
request transaction around it; it gets a plain session from
:func:`get_session`, which the user commits or rolls back like in any Python
shell.  Both are built from the one engine the site keeps in its registry, so
the notebook sees exactly the rows the site sees.
"""
import functools
import logging
from pathlib import Path

import bcrypt
import zope.sqlalchemy
from sqlalchemy import String, Text, engine_from_config, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

logger = logging.getLogger(__name__)

#: Registry keys under which the site keeps its engine and session factory.
ENGINE_KEY = "pyramid_notebook.demo.engine"
SESSION_FACTORY_KEY = "pyramid_notebook.demo.dbsession_factory"

#: Accounts created on first start.  All use the password ``password``; only
#: those named in ``pyramid_notebook.demo.superusers`` may open a shell, and
#: ``outsider`` is there to show (and test) what everybody else sees.
DEMO_ACCOUNTS = ("user", "user2", "outsider")
DEMO_PASSWORD = "password"

#: Rows for the home page, so the notebook has real data to query.
DEMO_ITEMS = (
    ("Teapot", "Cast iron, holds a litre.", 4),
    ("Bicycle bell", "Brass, loud enough for city traffic.", 12),
    ("Notebook", "Paper, squared, A5.", 30),
    ("Lamp", "Desk lamp with a warm LED.", 2),
)


class Base(DeclarativeBase):
    """Every demo model; the notebook imports all classes mapped on it."""


class User(Base):
    """A site account.  Only the bcrypt hash of the password is stored."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(60))

    def set_password(self, password: str) -> None:
        self.password_hash = bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")

    def check_password(self, password: str) -> bool:
        return bcrypt.checkpw(password.encode("utf-8"), self.password_hash.encode("ascii"))

    def __repr__(self):
        return "<User {} {!r}>".format(self.id, self.username)


class Item(Base):
    """Something in stock: the demo data listed on the home page."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    quantity: Mapped[int] = mapped_column(default=0)

    def __repr__(self):
        return "<Item {} {!r} x{}>".format(self.id, self.name, self.quantity)


@functools.cache
def _unknown_user_hash() -> bytes:
    """Checked against when a login names an unknown account, so that a wrong
    name takes as long to refuse as a wrong password."""
    return bcrypt.hashpw(b"no such user", bcrypt.gensalt())


def authenticate(dbsession: Session, username: str, password: str) -> User | None:
    """The account with this name and password, or ``None``."""
    user = dbsession.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None:
        bcrypt.checkpw(password.encode("utf-8"), _unknown_user_hash())
        return None
    return user if user.check_password(password) else None


def get_engine(settings: dict, prefix: str = "sqlalchemy."):
    """The engine for ``sqlalchemy.url``; a SQLite file's folder is created if missing."""
    url = make_url(settings[prefix + "url"])
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return engine_from_config(settings, prefix)


def get_session_factory(engine) -> sessionmaker:
    return sessionmaker(bind=engine)


def get_tm_session(session_factory: sessionmaker, transaction_manager, request=None) -> Session:
    """A session that commits or aborts with ``transaction_manager``."""
    dbsession = session_factory(info={"request": request})
    zope.sqlalchemy.register(dbsession, transaction_manager=transaction_manager)
    return dbsession


def get_session(registry) -> Session:
    """A plain session on the site's database, for a notebook or a script.

    It is not tied to any transaction manager: call ``session.commit()`` to
    keep changes.
    """
    return registry[SESSION_FACTORY_KEY]()


def initialize_database(engine) -> None:
    """Create the tables and, on a new database, the demo accounts and items.

    Runs on every start (the web process's and each notebook kernel's) and
    changes nothing once the rows are there.
    """
    Base.metadata.create_all(engine)
    with Session(engine) as dbsession, dbsession.begin():
        if dbsession.scalar(select(func.count()).select_from(User)):
            return
        logger.info("New database at %s: creating the demo accounts and items", engine.url)
        for username in DEMO_ACCOUNTS:
            user = User(username=username)
            user.set_password(DEMO_PASSWORD)
            dbsession.add(user)
        for name, description, quantity in DEMO_ITEMS:
            dbsession.add(Item(name=name, description=description, quantity=quantity))


def includeme(config):
    """Set up the engine, the database contents and ``request.dbsession``."""
    settings = config.get_settings()
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    config.include("pyramid_tm")

    engine = get_engine(settings)
    initialize_database(engine)
    session_factory = get_session_factory(engine)
    config.registry[ENGINE_KEY] = engine
    config.registry[SESSION_FACTORY_KEY] = session_factory

    def dbsession(request):
        return get_tm_session(session_factory, request.tm, request=request)

    config.add_request_method(dbsession, reify=True)

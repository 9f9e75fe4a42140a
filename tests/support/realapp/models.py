"""The app's database, built as the current Pyramid cookiecutter builds it.

No global session: each request gets ``request.dbsession``, joined to
``request.tm``, pyramid_tm's transaction manager in explicit mode (a
transaction exists only between ``tm.begin()`` and its end).
"""
import hashlib
import hmac
import secrets

import zope.sqlalchemy
from sqlalchemy import String, Text, engine_from_config, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class Base(DeclarativeBase):
    """Every model of the app."""


class User(Base):
    """An account.  Its name is ``name``: this app has no ``username``."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="editor")
    password_hash: Mapped[str] = mapped_column(String(128))

    def set_password(self, password: str) -> None:
        salt = secrets.token_hex(8)
        self.password_hash = salt + "$" + _hash(salt, password)

    def check_password(self, password: str) -> bool:
        salt, _sep, digest = self.password_hash.partition("$")
        return hmac.compare_digest(digest, _hash(salt, password))


def _hash(salt: str, password: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("ascii"), 10_000).hex()


class Page(Base):
    """A wiki-like page, served at ``/{name}``."""

    __tablename__ = "pages"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")

    def __repr__(self):
        return "<Page {} {!r}>".format(self.id, self.title)


def get_engine(settings: dict, prefix: str = "sqlalchemy."):
    """The engine ``sqlalchemy.url`` names."""
    return engine_from_config(settings, prefix)


def get_session_factory(engine) -> sessionmaker:
    """Sessions on ``engine``, with SQLAlchemy's defaults (objects expire on commit)."""
    factory = sessionmaker()
    factory.configure(bind=engine)
    return factory


def get_tm_session(session_factory: sessionmaker, transaction_manager, request=None) -> Session:
    """A session whose work commits or aborts with ``transaction_manager``'s transaction."""
    dbsession = session_factory(info={"request": request})
    zope.sqlalchemy.register(dbsession, transaction_manager=transaction_manager)
    return dbsession


def page_named(dbsession: Session, name: str) -> Page | None:
    """The page served at ``/{name}``, or ``None``."""
    return dbsession.scalars(select(Page).where(Page.name == name)).one_or_none()


def includeme(config):
    """pyramid_tm with its explicit manager, and ``request.dbsession``."""
    settings = config.get_settings()
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    config.include("pyramid_tm")

    session_factory = get_session_factory(get_engine(settings))
    config.registry["dbsession_factory"] = session_factory

    def dbsession(request):
        return get_tm_session(session_factory, request.tm, request=request)

    config.add_request_method(dbsession, reify=True)

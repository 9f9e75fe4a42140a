"""A small SQLAlchemy 2 model set for testing include_sqlalchemy_models in a real kernel."""
from sqlalchemy import ForeignKey, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class Person(Base):
    __tablename__ = "person"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Pet(Base):
    __tablename__ = "pet"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    owner_id: Mapped[int] = mapped_column(ForeignKey("person.id"))


def create_database(url: str) -> None:
    """Create the tables and a few rows."""
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all([Person(id=1, name="Ada"), Person(id=2, name="Grace"), Pet(id=1, name="Rex", owner_id=1)])
        session.commit()
    engine.dispose()

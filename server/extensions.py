"""Extension objects, created unbound and wired in ``create_app``; and where the session sends
its statements: the primary, or for ``replica_reads`` blocks the read replica."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as _FlaskSession
from sqlalchemy import Engine, MetaData
from sqlalchemy.exc import DBAPIError

from schemas.common import ErrorSchema

# Stable constraint names so that Alembic migrations never depend on the database's
# own generated names.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

REPLICA = "replica"  # the bind of the read replica (FENGQIAO_READ_DATABASE_URL), when there is one


class Session(_FlaskSession):
    """Flask-SQLAlchemy's session, which sends every statement of a ``replica_reads`` block to
    the read replica's engine when one is configured (else to the primary, as always)."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        if bind is None and self.info.get(REPLICA):
            replica = self._db.engines.get(REPLICA)
            if replica is not None:
                return replica
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION), session_options={"class_": Session})


@contextmanager
def replica_reads() -> Iterator[None]:
    """Read from the replica inside the block (also a decorator): for use cases whose answers may
    lag the primary by the replica's delay (figures, reports, exports), never for what a caller
    must see of its own writes or what depends on the primary's transaction ids (the map's and
    phones' change feeds). Changes pending in the session are flushed to the primary first; a
    write inside the block would go to the replica and fail there (it is read-only)."""
    session = db.session()
    session.flush()
    before = session.info.get(REPLICA, False)
    session.info[REPLICA] = True
    try:
        yield
    finally:
        session.info[REPLICA] = before


def read_engine() -> Engine:
    """The engine for a connection of its own that only reads and may lag (an export's snapshot):
    the replica's when there is one, else the primary's."""
    return db.engines.get(REPLICA, db.engine)


class _Api(Api):
    ERROR_SCHEMA = ErrorSchema

    def _init_spec(self, *, extra_plugins=None, **options):
        from server.api.spec import MultipartFormPlugin

        super()._init_spec(extra_plugins=[*(extra_plugins or ()), MultipartFormPlugin()], **options)


api = _Api()
migrate = Migrate()


def end_session() -> None:
    """Close the scoped session (the end of a request, of a worker's pass). When the database
    went away meanwhile (a restart), the rollback that closing makes fails: the server has
    rolled the transaction back itself, so the error is logged and the session dropped with
    its connection, instead of failing what already happened (a request's answer, the worker)."""
    try:
        db.session.remove()
    except DBAPIError as error:
        logging.getLogger("fengqiao").warning(
            "database gone as the session ended: %s", (str(error.orig).strip().splitlines() or [""])[0])
        db.session.registry().invalidate()  # its connection discarded, never back in the pool
        db.session.registry.clear()

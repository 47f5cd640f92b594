"""Extension objects, created unbound and wired in ``create_app``."""
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

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

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
class _Api(Api):
    ERROR_SCHEMA = ErrorSchema


api = _Api()
migrate = Migrate()

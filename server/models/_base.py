from datetime import datetime, timezone

from sqlalchemy.types import UserDefinedType


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def in_list(column: str, values) -> str:
    """SQL text of a CHECK that ``column`` is one of ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class XID8(UserDefinedType):
    """PostgreSQL ``xid8``: the id of the transaction that last wrote a row (sync cursors)."""

    cache_ok = True

    def get_col_spec(self, **kw) -> str:
        return "xid8"

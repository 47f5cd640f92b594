from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def in_list(column: str, values) -> str:
    """SQL text of a CHECK that ``column`` is one of ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"

"""How the analytic statements (a map's tiles, the evaluation figures) are run.

They read many rows and return few; PostgreSQL's defaults serve them badly in two ways,
both measured on the benchmark's data (docs/BENCHMARKS.md):

- JIT: the planner costs them high enough to compile them, and compiling takes longer than
  running them (300–500 ms on a tile of 60,000 points; 2 s of a borough's quarter).
- Server-side prepared statements: psycopg prepares a statement once it has run five times on
  a connection, and prepared, a tile's statement ran 4–7 times slower (a z12 tile 0.2 → 1 s),
  even with custom plans forced (``plan_cache_mode``): measured, not yet explained.
"""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import text

from server.extensions import db


@contextmanager
def analytic():
    """Run the statements of the block without JIT and never as server-side prepared
    statements. In a transaction the setting is the transaction's (SET LOCAL); an API read
    runs in autocommit, where SET LOCAL does nothing, so there it is set for the connection
    and put back after the block."""
    connection = db.session.connection()
    autocommit = connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
    connection.execute(text("SET jit = off" if autocommit else "SET LOCAL jit = off"))
    driver = connection.connection.driver_connection
    threshold, driver.prepare_threshold = driver.prepare_threshold, None
    try:
        yield
    finally:
        driver.prepare_threshold = threshold
        if autocommit:  # nothing aborted: each statement was its own transaction
            connection.execute(text("RESET jit"))

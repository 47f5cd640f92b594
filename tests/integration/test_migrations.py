"""The migrations make the schema the models describe: nothing for Alembic to generate."""
from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext


def test_the_migrated_schema_is_the_models_schema(db):
    with db.engine.connect() as connection, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Did not recognize type 'xid8'")  # sync's column: ours
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = [d for d in compare_metadata(context, db.metadata)
                       if not (d[0] == "remove_table" and d[1].name == "spatial_ref_sys")]  # PostGIS's own
    assert differences == []

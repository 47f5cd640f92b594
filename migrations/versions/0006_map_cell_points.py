"""The map's index of open incidents by cell also holds their points and what a tile shows of
them (id, geom, priority, level), so that a tile's incidents are read from the index alone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 22:20:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

OPEN = ("status IN ('accepted', 'acknowledged', 'dispatched', 'in_progress', 'reported', 'resolved', 'rework', "
        "'suspended')")
COUNTS = ['status', 'yellow_at', 'due_at', 'category_id', 'reported_at', 'region_path']


def _index(include):
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_open_cell', postgresql_where=sa.text(OPEN))
        batch_op.create_index('ix_incidents_open_cell', ['region_id'], unique=False, postgresql_where=sa.text(OPEN),
                              postgresql_include=include)


def upgrade():
    _index(COUNTS + ['id', 'geom', 'priority', 'level'])


def downgrade():
    _index(COUNTS)

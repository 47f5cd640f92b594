"""A point inside each region, kept by the database (the map draws cell clusters there).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 22:00:00

"""
import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('regions', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'centre', geoalchemy2.types.Geometry(geometry_type='POINT', srid=4326, spatial_index=False),
            sa.Computed('ST_PointOnSurface(geom)', persisted=True), nullable=True))


def downgrade():
    with op.batch_alter_table('regions', schema=None) as batch_op:
        batch_op.drop_column('centre')

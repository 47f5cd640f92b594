"""Patrols (docs/FIELD.md): a grid worker's shifts and their GPS points, one per 5-second slot.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24 02:05:00

"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_geospatial_table('patrols',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('client_uuid', sa.UUID(), nullable=False),
    sa.Column('region_path', sa.String(length=512), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('track', Geometry(geometry_type='MULTILINESTRING', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('distance_m', sa.Float(), server_default='0', nullable=False),
    sa.Column('points_kept', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('on', 'ended', 'abandoned')", name=op.f('ck_patrols_state')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_patrols_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patrols')),
    sa.UniqueConstraint('client_uuid', name=op.f('uq_patrols_client_uuid'))
    )
    with op.batch_alter_table('patrols', schema=None) as batch_op:
        batch_op.create_index('ix_patrols_user_started', ['user_id', 'started_at'], unique=False)

    op.create_geospatial_table('patrol_points',
    sa.Column('patrol_id', sa.BigInteger(), nullable=False),
    sa.Column('slot', sa.BigInteger(), nullable=False),
    sa.Column('t', sa.DateTime(timezone=True), nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('accuracy_m', sa.Float(), nullable=True),
    sa.Column('reason', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['patrol_id'], ['patrols.id'], name=op.f('fk_patrol_points_patrol_id_patrols'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('patrol_id', 'slot', name=op.f('pk_patrol_points'))
    )


def downgrade():
    op.drop_geospatial_table('patrol_points')
    with op.batch_alter_table('patrols', schema=None) as batch_op:
        batch_op.drop_index('ix_patrols_user_started')

    op.drop_geospatial_table('patrols')

"""Places to check in at on patrol (打卡点), the check-ins, when a patrol's points were
deleted after the retention period, and a patrol never ending before it starts (docs/FIELD.md).

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-24 02:40:00

"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_geospatial_table('patrol_places',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('region_path', sa.String(length=512), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('name_en', sa.String(length=100), nullable=True),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('radius_m', sa.Float(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('radius_m > 0 AND radius_m <= 1000', name=op.f('ck_patrol_places_radius')),
    sa.ForeignKeyConstraint(['region_id'], ['regions.id'], name=op.f('fk_patrol_places_region_id_regions')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_patrol_places_created_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patrol_places'))
    )
    op.create_index('ix_patrol_places_region', 'patrol_places', ['region_id'], unique=False)
    op.create_geospatial_table('patrol_checkins',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('patrol_id', sa.BigInteger(), nullable=False),
    sa.Column('place_id', sa.Integer(), nullable=False),
    sa.Column('client_uuid', sa.UUID(), nullable=False),
    sa.Column('t', sa.DateTime(timezone=True), nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('accuracy_m', sa.Float(), nullable=True),
    sa.Column('distance_m', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patrol_id'], ['patrols.id'], name=op.f('fk_patrol_checkins_patrol_id_patrols'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['place_id'], ['patrol_places.id'], name=op.f('fk_patrol_checkins_place_id_patrol_places')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patrol_checkins')),
    sa.UniqueConstraint('client_uuid', name=op.f('uq_patrol_checkins_client_uuid'))
    )
    op.create_index('ix_patrol_checkins_patrol', 'patrol_checkins', ['patrol_id'], unique=False)
    op.create_index('ix_patrol_checkins_place_t', 'patrol_checkins', ['place_id', 't'], unique=False)
    op.add_column('patrols', sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(op.f('ck_patrols_period'), 'patrols', 'ended_at IS NULL OR ended_at >= started_at')
    op.create_index('ix_patrols_to_purge', 'patrols', ['ended_at'], unique=False,
                    postgresql_where=sa.text('purged_at IS NULL'))


def downgrade():
    op.drop_index('ix_patrols_to_purge', table_name='patrols', postgresql_where=sa.text('purged_at IS NULL'))
    op.drop_constraint(op.f('ck_patrols_period'), 'patrols', type_='check')
    op.drop_column('patrols', 'purged_at')
    op.drop_index('ix_patrol_checkins_place_t', table_name='patrol_checkins')
    op.drop_index('ix_patrol_checkins_patrol', table_name='patrol_checkins')
    op.drop_geospatial_table('patrol_checkins')
    op.drop_index('ix_patrol_places_region', table_name='patrol_places')
    op.drop_geospatial_table('patrol_places')

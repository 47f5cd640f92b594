"""Early warning: hotspot alerts, and the inbox's new kind of message (风险预警).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 23:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

KINDS = ['task', 'task_repush', 'task_handover', 'reminder', 'escalated_in', 'escalated_out', 'supervised',
         'returned']


def _kinds(kinds):
    listed = ", ".join(f"'{kind}'" for kind in kinds)
    op.drop_constraint(op.f('ck_notifications_kind'), 'notifications', type_='check')
    op.create_check_constraint(op.f('ck_notifications_kind'), 'notifications', f"kind IN ({listed})")


def upgrade():
    op.create_table(
        'hotspot_alerts',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('region_id', sa.Integer(), nullable=False),
        sa.Column('category_id', sa.Integer(), nullable=False),
        sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reports', sa.Integer(), nullable=False),
        sa.Column('baseline_mean', sa.Float(), nullable=False),
        sa.Column('p_value', sa.Float(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_hotspot_alerts_category_id_categories')),
        sa.ForeignKeyConstraint(['region_id'], ['regions.id'], name=op.f('fk_hotspot_alerts_region_id_regions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_hotspot_alerts')),
    )
    op.create_index('ix_hotspot_alerts_place', 'hotspot_alerts', ['region_id', 'category_id', 'window_end'])
    _kinds(KINDS + ['hotspot'])


def downgrade():
    op.execute("DELETE FROM notifications WHERE kind = 'hotspot'")
    _kinds(KINDS)
    op.drop_index('ix_hotspot_alerts_place', table_name='hotspot_alerts')
    op.drop_table('hotspot_alerts')

"""Inspection campaigns (排查, docs/FIELD.md): campaigns, one task per grid cell, the incidents
found in a task, and the inbox's kinds of campaign messages.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-24 02:32:47

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

KINDS = ['task', 'task_repush', 'task_handover', 'reminder', 'escalated_in', 'escalated_out', 'supervised',
         'returned', 'hotspot', 'export_done', 'dispatch_waiting']
CAMPAIGN_KINDS = ['campaign_task', 'campaign_unassigned', 'campaign_overdue']


def _kinds(kinds):
    listed = ", ".join(f"'{kind}'" for kind in kinds)
    op.drop_constraint(op.f('ck_notifications_kind'), 'notifications', type_='check')
    op.create_check_constraint(op.f('ck_notifications_kind'), 'notifications', f"kind IN ({listed})")


def upgrade():
    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_uuid', sa.UUID(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('region_path', sa.String(length=512), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('category_group_ids', postgresql.ARRAY(sa.Integer()), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), server_default='open', nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.Integer(), nullable=True),
    sa.CheckConstraint("state IN ('open', 'closed')", name=op.f('ck_campaigns_state')),
    sa.CheckConstraint('cardinality(category_group_ids) > 0', name=op.f('ck_campaigns_category_groups')),
    sa.ForeignKeyConstraint(['closed_by'], ['users.id'], name=op.f('fk_campaigns_closed_by_users')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_campaigns_created_by_users')),
    sa.ForeignKeyConstraint(['region_id'], ['regions.id'], name=op.f('fk_campaigns_region_id_regions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')),
    sa.UniqueConstraint('client_uuid', name=op.f('uq_campaigns_client_uuid'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index('ix_campaigns_region_path', ['region_path'], unique=False,
                              postgresql_ops={'region_path': 'text_pattern_ops'})

    op.create_table('campaign_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('cell_id', sa.Integer(), nullable=False),
    sa.Column('cell_path', sa.String(length=512), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=16), server_default='open', nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_by', sa.Integer(), nullable=True),
    sa.Column('late', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('photo_sha256', sa.String(length=64), nullable=True),
    sa.Column('photo_content_type', sa.String(length=32), nullable=True),
    sa.Column('photo_size_bytes', sa.Integer(), nullable=True),
    sa.Column('photo_taken_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('overdue_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalation_stage', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('next_escalation_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(state = 'nothing_found') <= (photo_sha256 IS NOT NULL)",
                       name=op.f('ck_campaign_tasks_nothing_found_photo')),
    sa.CheckConstraint("state IN ('open', 'found', 'nothing_found', 'overdue', 'cancelled')",
                       name=op.f('ck_campaign_tasks_state')),
    sa.CheckConstraint('escalation_stage BETWEEN 0 AND 3', name=op.f('ck_campaign_tasks_escalation_stage')),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_campaign_tasks_assignee_id_users')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_tasks_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['cell_id'], ['regions.id'], name=op.f('fk_campaign_tasks_cell_id_regions')),
    sa.ForeignKeyConstraint(['finished_by'], ['users.id'], name=op.f('fk_campaign_tasks_finished_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_tasks')),
    sa.UniqueConstraint('campaign_id', 'cell_id', name='uq_campaign_tasks_campaign_cell')
    )
    with op.batch_alter_table('campaign_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_tasks_assignee_to_do', ['assignee_id'], unique=False,
                              postgresql_where=sa.text("state IN ('open', 'overdue')"))
        batch_op.create_index('ix_campaign_tasks_campaign_state', ['campaign_id', 'state'], unique=False)
        batch_op.create_index('ix_campaign_tasks_cell_path', ['cell_path'], unique=False,
                              postgresql_ops={'cell_path': 'text_pattern_ops'})
        batch_op.create_index('ix_campaign_tasks_escalation_due', ['next_escalation_at'], unique=False,
                              postgresql_where=sa.text('next_escalation_at IS NOT NULL'))

    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('campaign_task_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_incidents_campaign_task', ['campaign_task_id'], unique=False,
                              postgresql_where=sa.text('campaign_task_id IS NOT NULL'))
        batch_op.create_foreign_key(batch_op.f('fk_incidents_campaign_task_id_campaign_tasks'), 'campaign_tasks',
                                    ['campaign_task_id'], ['id'])

    _kinds(KINDS + CAMPAIGN_KINDS)


def downgrade():
    listed = ", ".join(f"'{kind}'" for kind in CAMPAIGN_KINDS)
    op.execute(f"DELETE FROM outbox WHERE notification_id IN (SELECT id FROM notifications WHERE kind IN ({listed}))")
    op.execute(f"DELETE FROM notifications WHERE kind IN ({listed})")
    _kinds(KINDS)
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_incidents_campaign_task_id_campaign_tasks'), type_='foreignkey')
        batch_op.drop_index('ix_incidents_campaign_task', postgresql_where=sa.text('campaign_task_id IS NOT NULL'))
        batch_op.drop_column('campaign_task_id')

    with op.batch_alter_table('campaign_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_tasks_escalation_due',
                            postgresql_where=sa.text('next_escalation_at IS NOT NULL'))
        batch_op.drop_index('ix_campaign_tasks_cell_path', postgresql_ops={'cell_path': 'text_pattern_ops'})
        batch_op.drop_index('ix_campaign_tasks_campaign_state')
        batch_op.drop_index('ix_campaign_tasks_assignee_to_do',
                            postgresql_where=sa.text("state IN ('open', 'overdue')"))

    op.drop_table('campaign_tasks')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index('ix_campaigns_region_path', postgresql_ops={'region_path': 'text_pattern_ops'})

    op.drop_table('campaigns')

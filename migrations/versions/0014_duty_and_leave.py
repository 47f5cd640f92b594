"""Duty and leave (docs/FIELD.md "Workload and duty"): a worker's on/off duty, leave recorded
by supervisors, and the inbox's message for a case no worker could be given automatically.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24 02:50:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

KINDS = ['task', 'task_repush', 'task_handover', 'reminder', 'escalated_in', 'escalated_out', 'supervised',
         'returned', 'hotspot', 'export_done']


def _kinds(kinds):
    listed = ", ".join(f"'{kind}'" for kind in kinds)
    op.drop_constraint(op.f('ck_notifications_kind'), 'notifications', type_='check')
    op.create_check_constraint(op.f('ck_notifications_kind'), 'notifications', f"kind IN ({listed})")


def upgrade():
    op.create_table('worker_duty',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('on_duty', sa.Boolean(), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_worker_duty_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_worker_duty'))
    )
    op.create_table('leaves',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_by', sa.Integer(), nullable=True),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_leaves_period')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_leaves_user_id_users')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_leaves_created_by_users')),
    sa.ForeignKeyConstraint(['cancelled_by'], ['users.id'], name=op.f('fk_leaves_cancelled_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leaves'))
    )
    op.create_index('ix_leaves_user_period', 'leaves', ['user_id', 'ends_at'], unique=False,
                    postgresql_where=sa.text('cancelled_at IS NULL'))
    _kinds(KINDS + ['dispatch_waiting'])


def downgrade():
    op.execute("DELETE FROM outbox WHERE notification_id IN "
               "(SELECT id FROM notifications WHERE kind = 'dispatch_waiting')")
    op.execute("DELETE FROM notifications WHERE kind = 'dispatch_waiting'")
    _kinds(KINDS)
    op.drop_index('ix_leaves_user_period', table_name='leaves', postgresql_where=sa.text('cancelled_at IS NULL'))
    op.drop_table('leaves')
    op.drop_table('worker_duty')

"""The inbox's new kind of message: an export job is done (导出完成).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 01:10:00

"""
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

KINDS = ['task', 'task_repush', 'task_handover', 'reminder', 'escalated_in', 'escalated_out', 'supervised',
         'returned', 'hotspot']


def _kinds(kinds):
    listed = ", ".join(f"'{kind}'" for kind in kinds)
    op.drop_constraint(op.f('ck_notifications_kind'), 'notifications', type_='check')
    op.create_check_constraint(op.f('ck_notifications_kind'), 'notifications', f"kind IN ({listed})")


def upgrade():
    _kinds(KINDS + ['export_done'])


def downgrade():
    op.execute("DELETE FROM outbox WHERE notification_id IN (SELECT id FROM notifications WHERE kind = 'export_done')")
    op.execute("DELETE FROM notifications WHERE kind = 'export_done'")
    _kinds(KINDS)

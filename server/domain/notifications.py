"""Notifications (消息通知): what people are told, and how a push is delivered.

Pure rules: no Flask, no database. Kinds carry zh/en labels; ``URGENT_KINDS`` ignore
quiet hours. Outbox states and the retry schedule are here too (docs/ESCALATION.md).
"""
from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

KIND_LABELS = {
    "task": ("新任务", "New task"),
    "task_repush": ("任务待签收", "Task waiting to be acknowledged"),
    "task_handover": ("任务已转交", "Task handed over"),
    "reminder": ("即将超时", "Due soon"),
    "escalated_in": ("案件升级至本级", "Case escalated to you"),
    "escalated_out": ("案件已上报上级", "Case escalated above you"),
    "supervised": ("督办", "Under supervision"),
    "returned": ("案件下派", "Case sent back down"),
    "hotspot": ("风险预警", "Risk warning"),
    "export_done": ("导出完成", "Export ready"),
    "dispatch_waiting": ("待派遣：无可派网格员", "To dispatch: no grid worker available"),
    "campaign_task": ("新排查任务", "New inspection task"),
    "campaign_unassigned": ("排查网格无人负责", "Inspection cells without a grid worker"),
    "campaign_overdue": ("排查任务超期", "Inspection tasks overdue"),
    "citizen_report": ("市民上报待受理", "Citizen's report to accept"),
    "citizen_update": ("市民补充情况", "Citizen's update on a case"),
}
KINDS = tuple(KIND_LABELS)
# Told at once whatever the hour: new work and cases that rose or are under supervision.
URGENT_KINDS = frozenset({"task", "task_repush", "task_handover", "escalated_in", "supervised", "returned"})

OUTBOX_STATES = ("pending", "sending", "sent", "failed", "expired", "dead")
OUTBOX_STATE_LABELS = {
    "pending": ("待发送", "Pending"), "sending": ("发送中", "Sending"), "sent": ("已送达FCM", "Sent"),
    "failed": ("发送失败", "Failed"), "expired": ("已过期", "Expired"), "dead": ("设备失效", "Device gone"),
}


def quiet_until(now: datetime, zone: ZoneInfo, quiet_from: time | None, quiet_to: time | None) -> datetime | None:
    """When a user's quiet hours that contain ``now`` end, or None when ``now`` is not in them.

    Quiet hours may cross midnight (22:00–07:00). Equal ends mean no quiet hours.
    """
    if quiet_from is None or quiet_to is None or quiet_from == quiet_to:
        return None
    local = now.astimezone(zone)
    t = local.timetz().replace(tzinfo=None)
    if quiet_from < quiet_to:
        inside = quiet_from <= t < quiet_to
        end_day = local.date()
    else:
        inside = t >= quiet_from or t < quiet_to
        end_day = local.date() + timedelta(days=1) if t >= quiet_from else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, quiet_to, zone).astimezone(now.tzinfo)


def retry_delay(attempt: int, *, base_s: float, cap_s: float, retry_after_s: float | None = None,
                rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1`` after ``attempt`` failures (1-based):
    exponential, jittered within [½, 1] of the step, capped; never sooner than the server's
    Retry-After (a message whose next attempt falls after its expiry expires instead)."""
    step = min(cap_s, base_s * 2 ** max(0, attempt - 1))
    delay = step * (0.5 + 0.5 * (rng or random).random())
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay

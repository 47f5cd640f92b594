"""Incident categories (事件/部件分类): kinds, typed extra attributes, escalation policy."""
from __future__ import annotations

KINDS = ("event", "facility", "dispute", "safety", "service")
KIND_LABELS = {
    "event": ("事件", "Event"),
    "facility": ("部件", "Public facility"),
    "dispute": ("矛盾纠纷", "Dispute"),
    "safety": ("安全隐患", "Safety hazard"),
    "service": ("民生服务", "Public service"),
}

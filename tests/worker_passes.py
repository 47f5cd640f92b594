"""Driving ``flask worker`` from tests: one pass at a chosen instant, and a phone registered
for pushes (the fake FCM path)."""
from __future__ import annotations

from datetime import datetime

from server import worker
from server.extensions import db
from server.models import Device
from server.notifications.senders import PushSender


def one_pass(sender: PushSender, at: datetime) -> worker.PassReport:
    """One pass of the worker with its clock at ``at``; its report."""
    reports = []
    worker.run(interval_s=0, sender=sender, clock=lambda: at, passes=1, on_pass=reports.append, listen=False)
    return reports[0]


def phone_of(user) -> str:
    """Register a phone of ``user`` for pushes; its token."""
    token = f"tok-{user.username}"
    db.session.add(Device(user_id=user.id, token=token, token_kind="registration_token", platform="android"))
    db.session.commit()
    return token

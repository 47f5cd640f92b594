"""Push delivery: senders (FCM through firebase-admin, or a logging sender) and the outbox
dispatcher. What to tell whom is decided in ``server.services.notify``."""
from __future__ import annotations

from flask import current_app

from .senders import FcmSender, LoggingSender, PushSender


def sender_from_config() -> PushSender:
    """FCM when ``FENGQIAO_FCM_CREDENTIALS`` names a service-account file, else the logging
    sender. An unreadable file stops the start with the reason (not a silent fallback)."""
    path = current_app.config.get("FCM_CREDENTIALS")
    if not path:
        return LoggingSender()
    return FcmSender(path)

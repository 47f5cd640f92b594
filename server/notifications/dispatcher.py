"""The push dispatcher: sends the outbox's due rows through a ``PushSender`` (docs/ESCALATION.md).

1. Rows whose lease ran out while ``sending`` (a worker died between sending and
   recording) are due again: they go out once more with the same ``message_id``, which
   the phone uses to drop the second copy.
2. Up to ``batch`` due rows are claimed (``FOR UPDATE SKIP LOCKED``), set ``sending`` with
   a lease, and committed; expired ones are set ``expired`` unsent.
3. They are sent outside any transaction.
4. Each result is recorded (an ``outbox_attempts`` row, always): sent; the device dead
   (disabled, the row ``dead``); a retry at the backoff's time (never sooner than
   Retry-After), unless the attempts are used up (``failed``) or the message would arrive
   after its expiry (``expired``); or failed for good.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update

from server.domain.notifications import retry_delay
from server.extensions import db
from server.models import Device, OutboxAttempt, OutboxMessage
from server.services.setwise import insert_rows, rows_of

from .senders import Push, PushResult, PushSender


def lease() -> timedelta:
    """How long a claimed row stays ``sending`` before it is due again (``PUSH_LEASE_SECONDS``):
    longer than a batch takes to send, short enough that a dead worker's rows go out soon."""
    return timedelta(seconds=current_app.config["PUSH_LEASE_SECONDS"])


@dataclass
class DispatchReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    failed: int = 0
    expired: int = 0
    reclaimed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.dead + self.failed + self.expired


def dispatch(now: datetime, sender: PushSender, *, batch: int = 500, rng: random.Random | None = None
             ) -> DispatchReport:
    """Send what is due at ``now``, batch after batch, until nothing is left."""
    report = DispatchReport()
    report.reclaimed = _reclaim(now)
    while _one_batch(now, sender, batch, report, rng):
        pass
    return report


def _reclaim(now: datetime) -> int:
    count = db.session.execute(update(OutboxMessage).where(
        OutboxMessage.status == "sending", OutboxMessage.lease_until <= now,
    ).values(status="pending", lease_until=None, next_attempt_at=now)).rowcount
    db.session.commit()
    return count


def _one_batch(now: datetime, sender: PushSender, batch: int, report: DispatchReport, rng) -> bool:
    rows = db.session.execute(
        select(OutboxMessage.id, OutboxMessage.expires_at, OutboxMessage.payload, OutboxMessage.high_priority,
               OutboxMessage.attempts, Device.id.label("device_id"), Device.token, Device.token_kind,
               Device.disabled_at)
        .join(Device, Device.id == OutboxMessage.device_id)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now,
               OutboxMessage.not_before <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(batch).with_for_update(skip_locked=True, of=OutboxMessage)).all()
    if not rows:
        db.session.commit()
        return False
    expired = [r.id for r in rows if r.expires_at <= now]
    gone = [r.id for r in rows if r.expires_at > now and r.disabled_at is not None]
    live = [r for r in rows if r.expires_at > now and r.disabled_at is None]
    if expired:
        _set(expired, status="expired", lease_until=None, last_error="expired before it could be sent")
        report.expired += len(expired)
    if gone:
        _set(gone, status="dead", lease_until=None, last_error="the device was disabled")
        report.dead += len(gone)
    if live:
        _set([r.id for r in live], status="sending", lease_until=now + lease(), attempts=OutboxMessage.attempts + 1)
    db.session.commit()  # claimed: another worker will not take them while the lease runs
    if live:
        pushes = [Push(token=r.token, token_kind=r.token_kind, data={k: str(v) for k, v in r.payload.items()},
                       high_priority=r.high_priority, expires_at=r.expires_at) for r in live]
        try:
            results = sender.send(pushes, now)
        except Exception as exc:  # the sender itself broke (not one message): all of them later
            results = [PushResult("retry", error_code=type(exc).__name__, detail=str(exc)[:500])] * len(live)
            report.errors.append(f"{type(exc).__name__}: {exc}"[:200])
        _record(live, results, now, report, rng)
    return len(rows) == batch


def _set(ids: list[int], **values) -> None:
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(**values)
                       .execution_options(synchronize_session=False))


def _record(rows, results: list[PushResult], now: datetime, report: DispatchReport, rng) -> None:
    """Each result's outcome, the row's new state, an attempt row, the dead devices: in
    three set-wise statements and one commit, whatever the batch's size."""
    changes, attempts, dead_devices = [], [], {}
    for row, result in zip(rows, results):
        outcome, change = _outcome(row, result, now, rng)
        setattr(report, _COUNTED[outcome], getattr(report, _COUNTED[outcome]) + 1)
        changes.append({"id": row.id, "status": outcome, "sent_at": None, "fcm_name": None,
                        "next_attempt_at": None, "last_error": None} | change)
        if outcome == "dead":
            dead_devices[row.device_id] = f"FCM: {result.error_code}"[:200]
        attempts.append({"outbox_id": row.id, "at": now, "outcome": "retry" if outcome == "pending" else outcome,
                         "http_status": result.http_status,
                         "error_code": result.error_code, "detail": (result.detail or None) and result.detail[:500]})
    outbox = OutboxMessage.__table__
    new = rows_of(outbox, list(changes[0]), changes)
    db.session.execute(update(outbox).where(outbox.c.id == new.c.id).values(
        status=new.c.status, lease_until=None, sent_at=new.c.sent_at, fcm_name=new.c.fcm_name,
        last_error=new.c.last_error, next_attempt_at=func.coalesce(new.c.next_attempt_at, outbox.c.next_attempt_at)))
    if dead_devices:
        devices = Device.__table__
        gone = rows_of(devices, ["id", "disabled_reason"],
                       [{"id": device, "disabled_reason": why} for device, why in dead_devices.items()])
        db.session.execute(update(devices).where(devices.c.id == gone.c.id, devices.c.disabled_at.is_(None))
                           .values(disabled_at=now, disabled_reason=gone.c.disabled_reason))
    db.session.execute(insert_rows(OutboxAttempt.__table__, attempts))
    db.session.commit()


# the report's counter of each outcome
_COUNTED = {"sent": "sent", "dead": "dead", "pending": "retried", "failed": "failed", "expired": "expired"}


def _outcome(row, result: PushResult, now: datetime, rng) -> tuple[str, dict]:
    """The row's next status after ``result`` and what changes with it."""
    cfg = current_app.config
    tries = row.attempts + 1
    if result.outcome == "sent":
        return "sent", {"sent_at": now, "fcm_name": result.name}
    if result.outcome == "dead":
        return "dead", {"last_error": _why(result)}
    if result.outcome != "retry":
        return "failed", {"last_error": _why(result)}
    at = now + timedelta(seconds=retry_delay(tries, base_s=cfg["PUSH_RETRY_BASE_SECONDS"],
                                             cap_s=cfg["PUSH_RETRY_CAP_SECONDS"],
                                             retry_after_s=result.retry_after_s, rng=rng))
    if tries >= cfg["PUSH_MAX_ATTEMPTS"]:
        return "failed", {"last_error": f"gave up after {tries} attempts: {_why(result)}"[:500]}
    if at >= row.expires_at:
        return "expired", {"last_error": f"the next try would come after its expiry: {_why(result)}"[:500]}
    return "pending", {"next_attempt_at": at, "last_error": _why(result)}


def _why(result: PushResult) -> str:
    parts = [p for p in (str(result.http_status) if result.http_status else None, result.error_code,
                         result.detail) if p]
    return " ".join(parts)[:500] or result.outcome

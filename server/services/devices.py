"""Phones (devices) that receive push notifications for their user.

One token, one phone, one user: registering a token that another user registered
before moves it to the current user (the phone changed hands or accounts).
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from server.domain.permissions import DEVICE_MANAGE, Actor
from server.errors import NotFound
from server.extensions import db
from server.models import Device
from server.models._base import utcnow

from .access import authorize


def register_device(actor: Actor, data: dict) -> tuple[Device, bool]:
    """Register or refresh the push token of the actor's phone (idempotent).

    Returns the device and whether it is new to this user. A known token gets its
    last_seen_at and app version updated and is enabled again.
    """
    device = _by_token(data["token"])
    created = device is None or device.user_id != actor.user_id
    if device is None:
        device = Device(user_id=actor.user_id, token=data["token"], token_kind=data["token_kind"],
                        platform=data["platform"])
        try:
            with db.session.begin_nested():
                db.session.add(device)
        except IntegrityError:  # the same token registered concurrently: update that row
            device = _by_token(data["token"])
            created = device.user_id != actor.user_id
    device.user_id = actor.user_id
    device.token_kind, device.platform = data["token_kind"], data["platform"]
    if "app_version" in data and data["app_version"] is not None:
        device.app_version = data["app_version"]
    device.last_seen_at = utcnow()
    device.disabled_at = device.disabled_reason = None
    db.session.commit()
    return device, created


def _by_token(token: str) -> Device | None:
    return db.session.scalars(select(Device).where(Device.token == token).with_for_update()).one_or_none()


def list_devices(actor: Actor) -> list[Device]:
    """The actor's own devices, newest first."""
    return list(db.session.scalars(
        select(Device).where(Device.user_id == actor.user_id).order_by(Device.last_seen_at.desc(), Device.id.desc())
    ))


def remove_device(actor: Actor, device_id: int | None = None, *, token: str | None = None) -> None:
    """Forget one of the actor's devices, by id or by its push token (sign-out on a
    phone, which knows its token). Errors: device.not_found."""
    device = db.session.get(Device, device_id) if token is None else _by_token(token)
    authorize(actor, DEVICE_MANAGE, device, not_found=NotFound("device.not_found", "No such device."))
    db.session.delete(device)
    db.session.commit()

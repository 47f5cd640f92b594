"""Open311 client apps (docs/OPEN311.md): keys issued by administrators, checked on every
keyed call, and each client's rate per minute counted in PostgreSQL so that every web
process shares one count; reads without a key are counted per address the same way.

A key is ``fq311_`` and 43 URL-safe characters (256 random bits), shown once when issued;
only its SHA-256 is kept, and its first 12 characters to name it in lists and logs.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, text, update

from server.domain.permissions import OPEN311_CLIENT_MANAGE, Actor
from server.errors import NotFound
from server.extensions import db
from server.models import Open311Client, Open311Usage
from server.models._base import utcnow
from server.open311.wire import Open311Error

from .access import TERRITORY, require

KEY_PREFIX = "fq311_"
# Minutes of usage kept (the rate needs one; the rest shows recent use to administrators).
USAGE_KEPT = timedelta(days=2)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def client_not_found() -> NotFound:
    return NotFound("open311.client_not_found", "No such Open311 client.")


def _view(client: Open311Client, **more) -> dict:
    return {"id": client.id, "name": client.name, "contact": client.contact, "key_prefix": client.key_prefix,
            "rate_per_minute": client.rate_per_minute, "issued_at": client.issued_at, "revoked_at": client.revoked_at,
            "last_used_at": client.last_used_at, **more}


def issue(actor: Actor, data: dict) -> dict:
    """A new client app and its key (in this answer only: never stored). Administrators only."""
    require(actor, OPEN311_CLIENT_MANAGE, TERRITORY)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    client = Open311Client(name=data["name"], contact=data.get("contact"), key_prefix=key[:12], key_hash=_digest(key),
                           rate_per_minute=data["rate_per_minute"], issued_by=actor.user_id or None)
    db.session.add(client)
    db.session.commit()
    return _view(client, api_key=key)


def list_clients(actor: Actor) -> list[dict]:
    """Every client with its calls in the last hour. Administrators only."""
    require(actor, OPEN311_CLIENT_MANAGE, TERRITORY)
    since = utcnow() - timedelta(hours=1)
    calls = (select(func.coalesce(func.sum(Open311Usage.calls), 0))
             .where(Open311Usage.client_id == Open311Client.id, Open311Usage.minute >= since).scalar_subquery())
    rows = db.session.execute(select(Open311Client, calls.label("calls")).order_by(Open311Client.id)).all()
    return [_view(client, calls_last_hour=calls) for client, calls in rows]


def revoke(actor: Actor, client_id: int) -> dict:
    """Revoke a client's key: its calls are refused from now on (403). Revoking twice changes nothing."""
    require(actor, OPEN311_CLIENT_MANAGE, TERRITORY)
    client = db.session.get(Open311Client, client_id)
    if client is None:
        raise client_not_found()
    if client.revoked_at is None:
        client.revoked_at, client.revoked_by = utcnow(), actor.user_id or None
    db.session.commit()
    return _view(client)


def authenticate(api_key: str | None, now: datetime) -> Open311Client:
    """The live client holding ``api_key``, its call counted. Errors: 403 (no key, an unknown
    or revoked one), 429 (over the client's rate this minute, with Retry-After). The count is
    committed at once: a refused call counts too, and nothing else is written."""
    if not api_key:
        raise Open311Error(403, "api_key is required: ask the city's administrators for one.")
    client = db.session.scalar(select(Open311Client).where(Open311Client.key_hash == _digest(api_key)))
    if client is None or client.revoked_at is not None:
        raise Open311Error(403, "This api_key is unknown or was revoked.")
    client_id, rate = client.id, client.rate_per_minute
    minute = now.replace(second=0, microsecond=0)
    calls = db.session.execute(text("""
        INSERT INTO open311_usage (client_id, minute, calls) VALUES (:client, :minute, 1)
        ON CONFLICT (client_id, minute) DO UPDATE SET calls = open311_usage.calls + 1
        RETURNING calls"""), {"client": client_id, "minute": minute}).scalar_one()
    if calls == 1:  # the first call of a minute says the key is in use
        db.session.execute(update(Open311Client).where(Open311Client.id == client_id).values(last_used_at=now))
    db.session.commit()
    if calls > rate:
        wait = 60 - now.second
        raise Open311Error(429, f"Over this client's {rate} calls a minute; try again in {wait} s.",
                           headers={"Retry-After": str(wait)})
    return client


def count_read(api_key: str | None, client_ip: str, now: datetime) -> None:
    """Count a read (the spec's reads need no key): with a key, as one of its client's calls
    (``authenticate``); without, as one of the address's this minute, refused past
    ``OPEN311_READS_PER_MINUTE``. Counted in PostgreSQL and committed at once, like keyed
    calls: every web process shares the count. Errors: 403 (an unknown or revoked key),
    429 (with Retry-After)."""
    if api_key:
        authenticate(api_key, now)
        return
    minute = now.replace(second=0, microsecond=0)
    calls = db.session.execute(text("""
        INSERT INTO open311_read_usage (client_ip, minute, calls) VALUES (:ip, :minute, 1)
        ON CONFLICT (client_ip, minute) DO UPDATE SET calls = open311_read_usage.calls + 1
        RETURNING calls"""), {"ip": client_ip[:64], "minute": minute}).scalar_one()
    db.session.commit()
    limit = current_app.config["OPEN311_READS_PER_MINUTE"]
    if calls > limit:
        wait = 60 - now.second
        raise Open311Error(429, f"Over {limit} reads a minute from this address; try again in {wait} s "
                                "(a client app reading for many people may read with its api_key).",
                           headers={"Retry-After": str(wait)})


def purge_usage(now: datetime) -> int:
    """Delete usage minutes older than USAGE_KEPT, keyed and anonymous (the worker does,
    every pass); anonymous reads' minutes once they are over."""
    deleted = db.session.execute(text("DELETE FROM open311_usage WHERE minute < :before"),
                                 {"before": now - USAGE_KEPT}).rowcount
    deleted += db.session.execute(text("DELETE FROM open311_read_usage WHERE minute < :before"),
                                  {"before": now - timedelta(minutes=2)}).rowcount
    db.session.commit()
    return deleted

"""Sign-in, token refresh, sign-out, and turning an access token into an actor.

Access tokens are short-lived HS256 JWTs naming a user and an ``AuthSession``; refresh
tokens are opaque random strings, stored hashed, rotated on every use. A refresh
token's successor is derived from it (HMAC with the server key), so a phone that lost
the answer to a refresh and retries within ``REFRESH_RETRY_GRACE`` gets the same
successor again; presenting a used token later revokes the whole session (it was copied).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt
from flask import current_app
from sqlalchemy import func, select, text, update

from server.domain.permissions import Actor
from server.errors import RateLimited, Unauthorized
from server.extensions import db
from server.models import AuthSession, LoginAttempt, RefreshToken, User
from server.models._base import utcnow

from .passwords import verify_password


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


REFRESH_RETRY_GRACE = timedelta(seconds=60)


def _successor(refresh_token: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return base64.urlsafe_b64encode(hmac.digest(key, b"refresh:" + refresh_token.encode(), "sha256")).rstrip(b"=").decode()


def _issue(session: AuthSession, user: User, refresh: str | None = None) -> TokenPair:
    """Sign an access token and add the refresh token ``refresh`` (new random when None)."""
    if refresh is None:
        refresh = secrets.token_urlsafe(32)
    db.session.add(RefreshToken(token_hash=_hash(refresh), session_id=session.id))
    return TokenPair(access_token=access_token_for(session, user), refresh_token=refresh,
                     expires_in=current_app.config["ACCESS_TOKEN_TTL"])


def access_token_for(session: AuthSession, user: User) -> str:
    """A signed access token of ``user`` bound to ``session`` (revoking the session ends it)."""
    now = utcnow()
    ttl = timedelta(seconds=current_app.config["ACCESS_TOKEN_TTL"])
    claims = {"sub": str(user.id), "sid": str(session.id), "iat": now, "exp": now + ttl, "typ": "access"}
    return jwt.encode(claims, current_app.config["SECRET_KEY"], algorithm="HS256")


def throttle_key(username: str) -> str:
    """The user name as sign-in attempts are counted (stable, fits the column)."""
    return username.strip().lower()[:64]


def check_throttle(username: str, client_ip: str) -> None:
    """Refuse (429) when recent failures for this user name or address reach the limit."""
    cfg = current_app.config
    window = timedelta(seconds=cfg["LOGIN_WINDOW_SECONDS"])
    since = utcnow() - window
    for column, value, limit in (
        (LoginAttempt.username, username, cfg["LOGIN_MAX_FAILURES_PER_USER"]),
        (LoginAttempt.client_ip, client_ip, cfg["LOGIN_MAX_FAILURES_PER_IP"]),
    ):
        count, oldest = db.session.execute(
            select(func.count(), func.min(LoginAttempt.at))
            .where(column == value, LoginAttempt.at > since, LoginAttempt.succeeded.is_(False))
        ).one()
        if count >= limit:
            retry_after = max(1, int((oldest + window - utcnow()).total_seconds()) + 1)
            raise RateLimited("auth.rate_limited", "Too many failed sign-in attempts; try again later.",
                              headers={"Retry-After": str(retry_after)})


def begin_attempt(username: str, client_ip: str) -> int:
    """Count a password attempt before the password is checked, and return its id: refused
    (429) when recent failures for this user name (a ``throttle_key``) or address reach the
    limit, else recorded as failed and committed. The check and the record are made under a
    lock per user name and per address, so guesses sent at once are counted one after
    another (checked first and recorded after, twenty at once would all pass a limit of
    five). The caller marks the attempt succeeded (``attempt_succeeded``)."""
    for kind, value in (("name", username), ("address", client_ip)):  # always in this order: no deadlock
        db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:kind), hashtext(:value))"),
                           {"kind": f"fengqiao:login-{kind}", "value": value})
    try:
        check_throttle(username, client_ip)
    except RateLimited:
        db.session.rollback()
        raise
    attempt = LoginAttempt(username=username, client_ip=client_ip, succeeded=False)
    db.session.add(attempt)
    db.session.flush()
    attempt_id = attempt.id
    db.session.commit()  # counted (and the locks released) before the slow password check
    return attempt_id


def attempt_succeeded(attempt_id: int) -> None:
    """The attempt counted by ``begin_attempt`` succeeded (committed by the caller)."""
    db.session.execute(update(LoginAttempt).where(LoginAttempt.id == attempt_id).values(succeeded=True))


def login(username: str, password: str, *, client_ip: str, user_agent: str | None) -> TokenPair:
    """Sign in with user name and password (登录). Errors: auth.rate_limited, auth.invalid_credentials."""
    username = username.strip()
    # PostgreSQL's lower() decides which user this is (the unique index uses it; Python's
    # lower() differs for a few letters such as a final Σ); the throttle key only needs
    # to be stable, and as long as the column at most.
    attempt = begin_attempt(throttle_key(username), client_ip)
    user = db.session.scalars(select(User).where(func.lower(User.username) == func.lower(username))).one_or_none()
    ok = verify_password(user.password_hash if user else None, password) and user.is_active
    if not ok:  # counted already
        raise Unauthorized("auth.invalid_credentials", "Wrong user name or password, or the account is disabled.")
    attempt_succeeded(attempt)
    session = AuthSession(
        id=uuid.uuid4(), user_id=user.id, client_ip=client_ip, user_agent=(user_agent or "")[:256],
        expires_at=utcnow() + timedelta(seconds=current_app.config["REFRESH_TOKEN_TTL"]),
    )
    db.session.add(session)
    pair = _issue(session, user)
    db.session.commit()
    return pair


def refresh(refresh_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair. Errors: auth.invalid_refresh_token."""
    invalid = Unauthorized("auth.invalid_refresh_token", "The refresh token is invalid, used or expired; sign in again.")
    row = db.session.execute(
        select(RefreshToken, AuthSession, User)
        .join(AuthSession, AuthSession.id == RefreshToken.session_id)
        .join(User, User.id == AuthSession.user_id)
        .where(RefreshToken.token_hash == _hash(refresh_token))
        .with_for_update(of=RefreshToken)
    ).one_or_none()
    if row is None:
        raise invalid
    token, session, user = row
    now = utcnow()
    successor = _successor(refresh_token)
    if token.used_at is not None and now - token.used_at < REFRESH_RETRY_GRACE and session.revoked_at is None:
        # A retry of a refresh whose answer was lost: hand out the same successor again
        # as long as the successor itself has not been used yet.
        following = db.session.get(RefreshToken, _hash(successor))
        if following is not None and following.used_at is None and user.is_active:
            return TokenPair(access_token=access_token_for(session, user), refresh_token=successor,
                             expires_in=current_app.config["ACCESS_TOKEN_TTL"])
    if token.used_at is not None:
        # A rotated token came back: someone holds a copy. End the whole session.
        if session.revoked_at is None:
            session.revoked_at, session.revoked_reason = now, "refresh_token_reuse"
            db.session.commit()
        raise invalid
    if session.revoked_at is not None or session.expires_at <= now or not user.is_active:
        raise invalid
    token.used_at = now
    pair = _issue(session, user, successor)
    db.session.commit()
    return pair


def logout(actor: Actor, session_id: uuid.UUID) -> None:
    """Revoke the current session: its access and refresh tokens stop working (登出)."""
    db.session.execute(
        text("UPDATE auth_sessions SET revoked_at = now(), revoked_reason = 'logout' "
             "WHERE id = :sid AND user_id = :uid AND revoked_at IS NULL"),
        {"sid": session_id, "uid": actor.user_id},
    )
    db.session.commit()


class _ActorCache:
    """Recently verified access tokens → (actor, session id), per process.

    A phone sends the same token with every request; verifying its signature and
    loading the actor again each time costs a database round trip. Entries live
    ``ACTOR_CACHE_SECONDS`` (never past the token's expiry). A write request in this
    process empties the cache (except those of ``ACTOR_NEUTRAL_BLUEPRINTS``, which cannot
    change an actor), so sign-out, deactivation and role changes apply at once here and
    within that many seconds in the other processes.
    """

    MAX_ENTRIES = 10_000

    def __init__(self):
        self._entries: dict[str, tuple[Actor, uuid.UUID, float]] = {}

    def get(self, token: str) -> tuple[Actor, uuid.UUID] | None:
        entry = self._entries.get(token)
        if entry is None or entry[2] <= time.monotonic():
            return None
        return entry[0], entry[1]

    def put(self, token: str, actor: Actor, session_id: uuid.UUID, seconds: float) -> None:
        if seconds <= 0:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries = {}
        self._entries[token] = (actor, session_id, time.monotonic() + seconds)

    def clear(self) -> None:
        self._entries = {}


actor_cache = _ActorCache()


def actor_for_access_token(token: str) -> tuple[Actor, uuid.UUID]:
    """Check a bearer token and load its actor in one query (or from ``actor_cache``).

    Errors: auth.token_expired, auth.invalid_token, auth.session_ended.
    """
    cached = actor_cache.get(token)
    if cached is not None:
        return cached
    try:
        claims = jwt.decode(token, current_app.config["SECRET_KEY"], algorithms=["HS256"],
                            options={"require": ["sub", "sid", "exp", "typ"]})
        if claims["typ"] != "access":
            raise jwt.InvalidTokenError("not an access token")
        user_id, session_id = int(claims["sub"]), uuid.UUID(claims["sid"])
    except jwt.ExpiredSignatureError:
        raise Unauthorized("auth.token_expired", "The access token has expired; refresh it.") from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise Unauthorized("auth.invalid_token", "The access token is not valid.") from None
    row = db.session.execute(
        text("SELECT u.role, u.department_id, r.path FROM users u "
             "JOIN regions r ON r.id = u.region_id "
             "JOIN auth_sessions s ON s.id = :sid AND s.user_id = u.id "
             "WHERE u.id = :uid AND u.is_active AND s.revoked_at IS NULL AND s.expires_at > now()"),
        {"sid": session_id, "uid": user_id},
    ).one_or_none()
    if row is None:
        raise Unauthorized("auth.session_ended", "This session has ended; sign in again.")
    actor = Actor(user_id=user_id, role=row.role, scope_path=row.path, department_id=row.department_id)
    seconds = min(current_app.config["ACTOR_CACHE_SECONDS"], claims["exp"] - time.time())
    actor_cache.put(token, actor, session_id, seconds)
    return actor, session_id

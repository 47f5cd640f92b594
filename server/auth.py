"""The current actor of a request, from its bearer token.

``login_required`` is the only way a view gets an actor: it authenticates, documents
the bearer scheme and the 401 answer in OpenAPI, and passes ``actor`` to the view.
"""
from __future__ import annotations

from functools import wraps

from flask import current_app, g, request
from flask_smorest import Blueprint

from server.errors import Unauthorized
from server.services.auth import actor_for_access_token

BEARER_SCHEME = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def client_ip() -> str:
    """The client address; behind N trusted proxies, the Nth address from the right."""
    hops = current_app.config["PROXY_COUNT"]
    if hops:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops][:64]  # a forged header must not overflow the audit column
    return request.remote_addr or "unknown"


def authenticate() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("auth.required", "Sign in and send 'Authorization: Bearer <access token>'.",
                           headers={"WWW-Authenticate": "Bearer"})
    g.actor, g.session_id = actor_for_access_token(token.strip())


def login_required(view):
    """Authenticate the request and call ``view(actor, ...)``.

    Stack it right under the route decorator, above ``@blp.arguments``: the token is
    checked before any body is parsed, so an anonymous client gets 401 and never has
    its body read.
    """

    @wraps(view)
    def wrapper(*args, **kwargs):
        authenticate()
        return view(g.actor, *args, **kwargs)

    return Blueprint.doc(security=[{"bearerAuth": []}])(wrapper)


def current_session_id():
    """The sign-in session of the authenticated request (after ``login_required``)."""
    return g.session_id

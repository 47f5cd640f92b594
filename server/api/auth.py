"""Sign-in (登录), token refresh and sign-out."""
from flask import request

from schemas.auth import LoginSchema, RefreshSchema, TokenPairSchema
from server.auth import client_ip, current_session_id, login_required
from server.services import auth as auth_service

from .common import Blueprint, errors

blp = Blueprint("auth", __name__, url_prefix="/auth", description="Sign-in and tokens")


@blp.post("/login")
@blp.arguments(LoginSchema)
@blp.response(200, TokenPairSchema)
@errors(blp, 401, 422, 429)
def login(data):
    """Sign in with user name and password"""
    return auth_service.login(data["username"], data["password"], client_ip=client_ip(),
                              user_agent=request.user_agent.string)


@blp.post("/refresh")
@blp.arguments(RefreshSchema)
@blp.response(200, TokenPairSchema)
@errors(blp, 401, 422)
def refresh(data):
    """Exchange a refresh token for a new token pair"""
    return auth_service.refresh(data["refresh_token"])


@blp.post("/logout")
@login_required
@blp.response(204)
@errors(blp, 401)
def logout(actor):
    """Sign out: end this session's access and refresh tokens"""
    auth_service.logout(actor, current_session_id())

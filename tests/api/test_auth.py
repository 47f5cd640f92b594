"""Sign-in, token refresh and rotation, sign-out, password change."""
from datetime import datetime, timedelta, timezone

import jwt
from sqlalchemy import func, select

from server.models import AuthSession, LoginAttempt, RefreshToken
from tests.builders import PASSWORD, build_tree, make_user

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"


def _login(http, username="worker1", password=PASSWORD):
    return http.post(LOGIN, json={"username": username, "password": password})


def _me(http, token):
    return http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def _count(db, model):
    return db.session.scalar(select(func.count()).select_from(model))


def test_login_returns_a_bearer_token_pair(http):
    build_tree()
    response = _login(http)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    assert body["access_token"] and body["refresh_token"]
    assert _me(http, body["access_token"]).json()["username"] == "worker1"


def test_login_ignores_the_case_of_the_user_name(http):
    build_tree()
    assert _login(http, "  WORKER1 ").status_code == 200


def test_login_with_a_wrong_password_is_refused(http):
    build_tree()
    response = _login(http, password="wrong password!")
    assert response.status_code == 401
    assert response.json()["code"] == "auth.invalid_credentials"


def test_login_as_an_unknown_user_gives_the_same_answer_as_a_wrong_password(http):
    build_tree()
    response = _login(http, "nobody")
    assert response.status_code == 401
    assert response.json()["code"] == "auth.invalid_credentials"


def test_an_inactive_user_cannot_sign_in(http, db):
    tree = build_tree()
    tree["grid_worker"].is_active = False
    db.session.commit()
    response = _login(http)
    assert response.status_code == 401
    assert response.json()["code"] == "auth.invalid_credentials"


def test_login_is_throttled_after_five_failures_with_retry_after(http, db):
    build_tree()
    for _ in range(5):
        assert _login(http, password="wrong password!").status_code == 401
    response = _login(http)  # even the right password now waits
    assert response.status_code == 429
    assert response.json()["code"] == "auth.rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 15 * 60 + 1
    assert _count(db, LoginAttempt) == 5  # a throttled attempt is not even checked


def test_throttling_one_user_name_leaves_others_alone(http):
    build_tree()
    for _ in range(5):
        _login(http, password="wrong password!")
    assert _login(http, "community1").status_code == 200


def test_login_with_missing_or_bad_fields_is_422(http):
    build_tree()
    for body in ({}, {"username": "worker1"}, {"username": "", "password": PASSWORD},
                 {"username": "x" * 65, "password": PASSWORD}, {"username": 5, "password": PASSWORD},
                 {"username": "worker1", "password": PASSWORD, "remember": True}):
        response = http.post(LOGIN, json=body)
        assert response.status_code == 422, body
        assert response.json()["code"] == "request.invalid"


def test_login_with_a_form_body_is_415(http):
    response = http.post(LOGIN, data={"username": "worker1", "password": PASSWORD})
    assert response.status_code == 415
    assert response.json()["code"] == "request.unsupported_media_type"


def test_refresh_rotates_the_refresh_token(http):
    build_tree()
    first = _login(http).json()
    response = http.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert _me(http, second["access_token"]).status_code == 200
    third = http.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200


def test_a_refresh_retried_within_the_grace_period_returns_the_same_successor(http):
    build_tree()
    first = _login(http).json()
    one = http.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    two = http.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert one.status_code == two.status_code == 200
    assert one.json()["refresh_token"] == two.json()["refresh_token"]


def test_reusing_a_refresh_token_after_its_successor_was_used_ends_the_session(http, db):
    build_tree()
    first = _login(http).json()
    second = http.post(REFRESH, json={"refresh_token": first["refresh_token"]}).json()
    third = http.post(REFRESH, json={"refresh_token": second["refresh_token"]}).json()
    replay = http.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert replay.json()["code"] == "auth.invalid_refresh_token"
    ended = _me(http, third["access_token"])
    assert ended.status_code == 401
    assert ended.json()["code"] == "auth.session_ended"
    latest = http.post(REFRESH, json={"refresh_token": third["refresh_token"]})
    assert latest.status_code == 401
    assert latest.json()["code"] == "auth.invalid_refresh_token"
    assert db.session.scalar(select(AuthSession.revoked_reason)) == "refresh_token_reuse"


def test_an_unknown_refresh_token_is_401(http):
    response = http.post(REFRESH, json={"refresh_token": "not-a-token"})
    assert response.status_code == 401
    assert response.json()["code"] == "auth.invalid_refresh_token"


def test_refresh_without_a_token_is_422(http):
    response = http.post(REFRESH, json={"refresh_token": ""})
    assert response.status_code == 422
    assert response.json()["code"] == "request.invalid"


def test_logout_ends_the_access_and_refresh_tokens(http):
    build_tree()
    pair = _login(http).json()
    response = http.post(LOGOUT, headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert response.status_code == 204
    ended = _me(http, pair["access_token"])
    assert ended.status_code == 401
    assert ended.json()["code"] == "auth.session_ended"
    refused = http.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    assert refused.status_code == 401
    assert refused.json()["code"] == "auth.invalid_refresh_token"


def test_logout_ends_only_the_current_session(http):
    build_tree()
    phone, laptop = _login(http).json(), _login(http).json()
    http.post(LOGOUT, headers={"Authorization": f"Bearer {phone['access_token']}"})
    assert _me(http, laptop["access_token"]).status_code == 200


def test_a_request_without_a_token_is_401_auth_required(http):
    response = http.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["code"] == "auth.required"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_non_bearer_authorization_is_401_auth_required(http):
    response = http.get("/api/v1/me", headers={"Authorization": "Basic d29ya2VyMTpwdw=="})
    assert response.status_code == 401
    assert response.json()["code"] == "auth.required"


def test_a_garbage_token_is_401_invalid_token(http):
    response = _me(http, "garbage.token.here")
    assert response.status_code == 401
    assert response.json()["code"] == "auth.invalid_token"


def test_a_token_signed_with_another_key_is_401_invalid_token(http, app):
    build_tree()
    claims = {"sub": "1", "sid": "00000000-0000-0000-0000-000000000000", "typ": "access",
              "exp": datetime.now(timezone.utc) + timedelta(minutes=5)}
    response = _me(http, jwt.encode(claims, "another key that is long enough for hs256", algorithm="HS256"))
    assert response.status_code == 401
    assert response.json()["code"] == "auth.invalid_token"


def test_an_expired_token_is_401_token_expired(http, app):
    build_tree()
    pair = _login(http).json()
    claims = jwt.decode(pair["access_token"], app.config["SECRET_KEY"], algorithms=["HS256"])
    claims["exp"] = datetime.now(timezone.utc) - timedelta(seconds=5)
    response = _me(http, jwt.encode(claims, app.config["SECRET_KEY"], algorithm="HS256"))
    assert response.status_code == 401
    assert response.json()["code"] == "auth.token_expired"


def test_a_deactivated_users_token_stops_working(http, db):
    tree = build_tree()
    pair = _login(http).json()
    tree["grid_worker"].is_active = False
    db.session.commit()
    response = _me(http, pair["access_token"])
    assert response.status_code == 401
    assert response.json()["code"] == "auth.session_ended"


# --- password change -----------------------------------------------------------------

PASSWORD_URL = "/api/v1/me/password"


def test_changing_the_password_ends_the_other_sessions_only(http, client_for):
    tree = build_tree()
    other = client_for(tree["grid_worker"])
    me = client_for(tree["grid_worker"])
    response = me.post(PASSWORD_URL, json={"current_password": PASSWORD, "new_password": "a much newer secret"})
    assert response.status_code == 204, response.text
    assert me.get("/api/v1/me").status_code == 200
    ended = other.get("/api/v1/me")
    assert ended.status_code == 401
    assert ended.json()["code"] == "auth.session_ended"
    assert _login(http, password=PASSWORD).status_code == 401
    assert _login(http, password="a much newer secret").status_code == 200


def test_changing_the_password_with_a_wrong_current_one_is_403(http, client_for):
    tree = build_tree()
    me = client_for(tree["grid_worker"])
    response = me.post(PASSWORD_URL, json={"current_password": "not my password", "new_password": "a much newer secret"})
    assert response.status_code == 403
    assert response.json()["code"] == "auth.wrong_password"
    assert _login(http).status_code == 200


def test_guessing_the_current_password_is_throttled_like_sign_in(http, client_for):
    tree = build_tree()
    me = client_for(tree["grid_worker"])
    for _ in range(5):
        me.post(PASSWORD_URL, json={"current_password": "not my password", "new_password": "a much newer secret"})
    response = me.post(PASSWORD_URL, json={"current_password": PASSWORD, "new_password": "a much newer secret"})
    assert response.status_code == 429
    assert response.json()["code"] == "auth.rate_limited"
    assert "Retry-After" in response.headers


def test_a_weak_new_password_is_422(http, client_for):
    tree = build_tree()
    me = client_for(tree["grid_worker"])
    response = me.post(PASSWORD_URL, json={"current_password": PASSWORD, "new_password": "short"})
    assert response.status_code == 422
    assert response.json()["code"] == "user.weak_password"
    assert _login(http).status_code == 200


def test_a_password_change_without_fields_is_422(http, client_for):
    tree = build_tree()
    me = client_for(tree["grid_worker"])
    response = me.post(PASSWORD_URL, json={"new_password": "a much newer secret"})
    assert response.status_code == 422
    assert response.json()["code"] == "request.invalid"
    assert "current_password" in response.json()["errors"]


def test_refresh_tokens_are_stored_only_as_hashes(http, db):
    build_tree()
    pair = _login(http).json()
    stored = db.session.scalars(select(RefreshToken.token_hash)).all()
    assert pair["refresh_token"] not in stored and len(stored) == 1


def test_me_shows_role_labels_scope_department_and_cells(http, client_for):
    tree = build_tree()
    body = client_for(tree["grid_worker"]).get("/api/v1/me").json()
    assert body["role"] == "grid_worker"
    assert body["role_label"] == {"zh": "网格员", "en": "Grid worker"}
    assert body["region"]["code"] == "440101001001" and body["region"]["level"] == "community"
    assert body["department"] is None
    assert [(c["region"]["code"], c["duty"]) for c in body["cells"]] == [("44010100100101", "primary")]
    assert "password_hash" not in body and "password" not in body
    police = client_for(tree["department"]).get("/api/v1/me").json()
    assert police["department"]["code"] == "DEP-S1-POLICE"
    assert police["role_label"]["en"] == "Department handler"


def test_me_for_a_user_made_after_the_tree(http, client_for):
    tree = build_tree()
    user = make_user("latecomer", "community", tree["K2"])
    response = client_for(user).get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["cells"] == []

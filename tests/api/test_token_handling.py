"""Tokens and sign-in against hostile clients (OWASP API2): forged, altered, misused and
stale tokens; refresh tokens after rotation, sign-out, deactivation and password changes;
throttling per user name and per address, concurrently too; tokens kept out of logs."""
from __future__ import annotations

import base64
import json
import logging
import threading

import jwt
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from server.extensions import db
from server.models import LoginAttempt
from tests.builders import PASSWORD, build_tree

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"


@pytest.fixture
def tree(http):
    return build_tree()


def sign_in(http, username="worker1", password=PASSWORD):
    return http.post(LOGIN, json={"username": username, "password": password})


def me(http, token):
    return http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def refused(response, code="auth.invalid_token"):
    assert (response.status_code, response.json()["code"]) == (401, code), response.text
    return True


def test_unsigned_and_wrongly_signed_tokens_are_refused(tree, http, app):
    pair = sign_in(http).json()
    claims = claims_of(pair["access_token"])
    header, payload, signature = pair["access_token"].split(".")
    admin_id = str(tree["admin"].id)
    forged = [
        f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",  # alg=none
        f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims | {'sub': admin_id})}.",
        f"{header}.{b64(claims | {'sub': admin_id})}.{signature}",  # another user, the old signature
        f"{header}.{b64(claims | {'exp': claims['exp'] + 86400})}.{signature}",  # a longer life
        jwt.encode(claims, app.config["SECRET_KEY"], algorithm="HS512"),  # the right key, another algorithm
        jwt.encode(claims | {"typ": "refresh"}, app.config["SECRET_KEY"], algorithm="HS256"),
        jwt.encode({k: v for k, v in claims.items() if k != "typ"}, app.config["SECRET_KEY"], algorithm="HS256"),
        jwt.encode(claims | {"sid": "not-a-uuid"}, app.config["SECRET_KEY"], algorithm="HS256"),
        jwt.encode(claims | {"sub": "1e3"}, app.config["SECRET_KEY"], algorithm="HS256"),
        pair["access_token"] + "x", pair["refresh_token"], "", "a.b", "a.b.c.d",
    ]
    for token in forged:
        response = me(http, token)
        assert response.status_code == 401 and response.json()["code"].startswith("auth."), token
    assert me(http, pair["access_token"]).status_code == 200


def test_a_token_naming_a_session_of_another_user_is_refused(tree, http, app):
    """Signed with the server's key (as after a key leak of one claim): the session must be the user's."""
    mine = claims_of(sign_in(http).json()["access_token"])
    theirs = claims_of(sign_in(http, "community1").json()["access_token"])
    mixed = jwt.encode(mine | {"sid": theirs["sid"]}, app.config["SECRET_KEY"], algorithm="HS256")
    assert refused(me(http, mixed), "auth.session_ended")


def test_access_and_refresh_tokens_are_not_interchangeable(tree, http):
    pair = sign_in(http).json()
    assert refused(me(http, pair["refresh_token"]))
    response = http.post(REFRESH, json={"refresh_token": pair["access_token"]})
    assert refused(response, "auth.invalid_refresh_token")
    assert http.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).status_code == 200


def test_refresh_tokens_die_with_their_session(tree, http, client_for, db):
    # signed out
    pair = sign_in(http).json()
    http.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert refused(http.post(REFRESH, json={"refresh_token": pair["refresh_token"]}), "auth.invalid_refresh_token")
    # the password changed on another phone
    other = sign_in(http).json()
    current = sign_in(http).json()
    changed = http.post("/api/v1/me/password", headers={"Authorization": f"Bearer {current['access_token']}"},
                        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"})
    assert changed.status_code == 204
    assert refused(http.post(REFRESH, json={"refresh_token": other["refresh_token"]}), "auth.invalid_refresh_token")
    assert http.post(REFRESH, json={"refresh_token": current["refresh_token"]}).status_code == 200
    # a manager resets the password, then deactivates the account
    mine = sign_in(http, password="a brand new passphrase").json()
    community = client_for(tree["community"])
    version = community.get(f"/api/v1/users/{tree['grid_worker'].id}").json()["version"]
    reset = community.patch(f"/api/v1/users/{tree['grid_worker'].id}",
                            json={"password": "reset by the community", "version": version})
    assert reset.status_code == 200
    assert refused(http.post(REFRESH, json={"refresh_token": mine["refresh_token"]}), "auth.invalid_refresh_token")
    assert refused(me(http, mine["access_token"]), "auth.session_ended")
    again = sign_in(http, password="reset by the community").json()
    community.patch(f"/api/v1/users/{tree['grid_worker'].id}", json={"is_active": False, "version": version + 1})
    assert refused(http.post(REFRESH, json={"refresh_token": again["refresh_token"]}), "auth.invalid_refresh_token")
    assert refused(me(http, again["access_token"]), "auth.session_ended")


def test_a_refresh_token_used_after_its_successor_ends_the_session_for_everyone_holding_it(tree, http):
    pair = sign_in(http).json()
    first = http.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).json()
    second = http.post(REFRESH, json={"refresh_token": first["refresh_token"]}).json()
    assert refused(http.post(REFRESH, json={"refresh_token": pair["refresh_token"]}), "auth.invalid_refresh_token")
    assert refused(http.post(REFRESH, json={"refresh_token": second["refresh_token"]}), "auth.invalid_refresh_token")
    assert refused(me(http, second["access_token"]), "auth.session_ended")


def test_the_address_limit_holds_across_user_names_and_forged_forwarding_headers(tree, http, app, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_MAX_FAILURES_PER_IP", 3)
    for n in range(3):
        http.post(LOGIN, json={"username": f"nobody{n}", "password": "wrong password"},
                  headers={"X-Forwarded-For": f"10.0.0.{n}"})
    response = http.post(LOGIN, json={"username": "community1", "password": PASSWORD},
                         headers={"X-Forwarded-For": "10.9.9.9"})  # no proxy is trusted: the header is ignored
    assert (response.status_code, response.json()["code"]) == (429, "auth.rate_limited")
    assert int(response.headers["Retry-After"]) >= 1


def test_guesses_sent_at_once_are_counted_as_they_come(tree, http):
    """Twenty wrong passwords at the same moment: five are checked, the rest refused (429)."""
    statuses = []

    def guess(n):
        statuses.append(sign_in(http, password=f"wrong guess {n}").status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [401] * 5 + [429] * 15
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(LoginAttempt)) == 5


def test_no_token_or_password_reaches_the_logs(tree, http, caplog):
    with caplog.at_level(logging.DEBUG):
        pair = sign_in(http).json()
        me(http, pair["access_token"])
        http.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
        sign_in(http, password="a wrong password")
        me(http, pair["access_token"] + "tampered")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (pair["access_token"], pair["access_token"].split(".")[2], pair["refresh_token"], PASSWORD,
                   "a wrong password"):
        assert secret not in logged


def test_database_errors_are_logged_without_their_values(tree, app, caplog):
    """Neither the statement's parameters nor PostgreSQL's DETAIL (the failing row: password
    and token hashes, phone numbers) reach the log or the error's text."""
    with pytest.raises(IntegrityError) as failure:
        db.session.execute(text("INSERT INTO users (id, username) VALUES (:id, :secret)"),
                           {"id": tree["admin"].id, "secret": "secret-hash-value"})
    db.session.rollback()
    assert "parameters hidden" in str(failure.value) and "'secret-hash-value'" not in str(failure.value)
    with app.test_request_context("/api/v1/me"), caplog.at_level(logging.DEBUG):
        response = app.handle_user_exception(failure.value)
    assert response.status_code == 500 and response.get_json()["code"] == "internal"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "NotNullViolation 23502 table=users column=display_name" in logged
    assert "secret-hash-value" not in logged

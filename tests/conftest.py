"""Shared fixtures: the app on a real PostGIS test database, a clean database per test,
and a live HTTP server for API tests.

The test database is ``TEST_DATABASE_URL`` or the embedded cluster's ``fengqiao_test``
(``make test`` creates it); it is migrated with Alembic once per session, so the
migrations themselves are under test.
"""
from __future__ import annotations

import os
import threading

import flask_migrate
import pytest
import requests
from sqlalchemy import text
from werkzeug.serving import make_server

from server import create_app
from server.config import embedded_database_url
from server.extensions import db as _db
from server.services.calendar import forget_cached_entries
from server.services.deadlines import forget_cached_overrides

KEEP_TABLES = {"spatial_ref_sys", "alembic_version"}


def test_database_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or embedded_database_url("fengqiao_test")


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    app = create_app({
        "TESTING": True,
        "PHOTO_DIR": str(tmp_path_factory.mktemp("photos")),
        "SQLALCHEMY_DATABASE_URI": test_database_url().replace("postgresql://", "postgresql+psycopg://", 1),
        "PASSWORD_PROFILE": "CHEAPEST",
    })
    with app.app_context():
        flask_migrate.upgrade()
        yield app
        _db.session.remove()
        _db.engine.dispose()


def empty_database() -> None:
    """Every row gone (the schema stays), and what this process cached of them."""
    _db.session.rollback()
    tables = [t.name for t in reversed(_db.metadata.sorted_tables) if t.name not in KEEP_TABLES]
    _db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    _db.session.commit()
    forget_cached_entries()  # the calendar days and policy overrides cached by this process went with the rows
    forget_cached_overrides()


@pytest.fixture
def db(app):
    """A database emptied of every row before the test (the schema stays)."""
    empty_database()
    yield _db
    _db.session.rollback()


class ApiClient:
    """requests over real HTTP, with the base URL and an optional bearer token."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.session = requests.Session()
        self.token: str | None = None

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {}) or {}
        if self.token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.session.request(method, self.base_url + path, headers=headers, timeout=60, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def login(self, username: str, password: str) -> ApiClient:
        response = self.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        self.token = response.json()["access_token"]
        return self


@pytest.fixture(scope="session")
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def http(live_server, db):
    """An anonymous client on a clean database; ``http.login(...)`` signs in."""
    return ApiClient(live_server)


@pytest.fixture
def tree(db):
    """The small city of tests/builders.py with the standard categories, on a clean database."""
    from tests.builders import build_tree, standard_categories

    tree = build_tree()
    standard_categories()
    return tree


@pytest.fixture
def client_for(live_server):
    """Make another signed-in client: ``client_for(user)``."""
    from tests.builders import PASSWORD

    def make(user) -> ApiClient:
        return ApiClient(live_server).login(user.username, PASSWORD)

    return make

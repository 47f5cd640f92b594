"""The per-process cache of verified tokens: what another process changes shows up
within ACTOR_CACHE_SECONDS; what this process writes shows up at once."""
import time

import pytest
from sqlalchemy import text

from server.extensions import db
from tests.builders import build_tree


@pytest.fixture
def short_cache(app):
    before = app.config["ACTOR_CACHE_SECONDS"]
    app.config["ACTOR_CACHE_SECONDS"] = 1
    yield
    app.config["ACTOR_CACHE_SECONDS"] = before


def deactivate_behind_the_apps_back(user):
    db.session.execute(text("UPDATE users SET is_active = false WHERE id = :id"), {"id": user.id})
    db.session.commit()


def test_a_change_made_elsewhere_applies_when_the_cached_actor_expires(http, client_for, short_cache):
    tree = build_tree()
    worker = client_for(tree["grid_worker"])
    assert worker.get("/api/v1/me").status_code == 200
    deactivate_behind_the_apps_back(tree["grid_worker"])
    assert worker.get("/api/v1/me").status_code == 200  # still the cached actor
    time.sleep(1.2)
    response = worker.get("/api/v1/me")
    assert (response.status_code, response.json()["code"]) == (401, "auth.session_ended")


def test_a_write_in_this_process_forgets_cached_actors_at_once(http, client_for):
    tree = build_tree()
    worker = client_for(tree["grid_worker"])
    assert worker.get("/api/v1/me").status_code == 200
    deactivate_behind_the_apps_back(tree["grid_worker"])
    http.post("/api/v1/auth/login", json={"username": "nobody", "password": "x" * 12})  # any write request
    response = worker.get("/api/v1/me")
    assert (response.status_code, response.json()["code"]) == (401, "auth.session_ended")


def test_incident_and_category_writes_keep_cached_actors(http, client_for):
    """They cannot change who anyone is, so a phone reporting all day is not checked each time."""
    tree = build_tree()
    worker = client_for(tree["grid_worker"])
    assert worker.get("/api/v1/me").status_code == 200
    deactivate_behind_the_apps_back(tree["grid_worker"])
    assert http.post("/api/v1/incidents", json={}).status_code == 401  # a write of the incidents blueprint
    assert worker.get("/api/v1/me").status_code == 200  # still the cached actor
    http.post("/api/v1/auth/login", json={"username": "nobody", "password": "x" * 12})  # another write
    assert worker.get("/api/v1/me").status_code == 401

"""A read replica (FENGQIAO_READ_DATABASE_URL): figures, reports and exports read through it;
writes, sign-in, the map's tiles and change feed stay on the primary.

The "replica" is the test database itself through connections that are read-only
(``default_transaction_read_only``): every statement is recorded per engine, so a test sees
which one ran it, and a write sent to the replica would fail there."""
from __future__ import annotations

import threading
from collections import defaultdict

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InternalError
from werkzeug.serving import make_server

from server import create_app
from server.extensions import REPLICA
from server.extensions import db as _db
from tests.api.test_export_jobs import one_pass
from tests.api.test_incidents import body
from tests.api.test_stats import Q1
from tests.builders import PASSWORD
from tests.conftest import ApiClient


@pytest.fixture(scope="module")
def replica_app(app):
    """An app whose replica bind is the test database, read-only, and the statements each
    engine ran (``statements["primary"]``, ``statements["replica"]``)."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    read_only = url.update_query_dict({"options": "-c default_transaction_read_only=on"})
    made = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                       "SQLALCHEMY_BINDS": {REPLICA: read_only.render_as_string(hide_password=False)},
                       "PHOTO_DIR": app.config["PHOTO_DIR"], "PASSWORD_PROFILE": "CHEAPEST"})
    statements = defaultdict(list)
    with made.app_context():
        for name, engine in (("primary", _db.engines[None]), ("replica", _db.engines[REPLICA])):
            event.listen(engine, "before_cursor_execute",
                         lambda conn, cursor, sql, params, context, many, name=name: statements[name].append(sql))
    made.statements = statements
    yield made
    with made.app_context():
        _db.engine.dispose()
        _db.engines[REPLICA].dispose()


@pytest.fixture(scope="module")
def replica_server(replica_app):
    server = make_server("127.0.0.1", 0, replica_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def on_replica_app(replica_server, replica_app, tree, cases):
    """Sign in to the replica app: ``on_replica_app(user)``; the statements recorded so far are
    forgotten."""
    def client(user) -> ApiClient:
        signed_in = ApiClient(replica_server).login(user.username, PASSWORD)
        replica_app.statements.clear()
        return signed_in

    return client


def ran(replica_app, engine: str, marker: str) -> bool:
    return any(marker in sql for sql in replica_app.statements[engine])


@pytest.mark.parametrize("path, params, marker", [
    ("/api/v1/stats/regions/{C}", Q1, "incident_milestones"),
    ("/api/v1/stats/regions/{C}/workers", Q1, "incident_events"),
    ("/api/v1/stats/regions/{C}/trends", Q1, "FROM incidents"),
    ("/api/v1/stats/regions/{C}/hotspots", {"end": "2026-04-01T00:00:00+08:00"}, "FROM incidents"),  # not "now"
    ("/api/v1/stats/regions/{C}/export.csv", Q1, "incident_milestones"),
    ("/api/v1/reports/regions/{C}/quarterly", {"year": 2026, "quarter": 1, "format": "html"}, "incident_milestones"),
])
def test_figures_and_reports_are_read_from_the_replica(replica_app, on_replica_app, client_for, tree, path, params,
                                                       marker):
    url = path.format(C=tree["C"].id)
    on_replica = on_replica_app(tree["city"]).get(url, params=params)
    assert on_replica.status_code == 200, on_replica.text
    assert ran(replica_app, "replica", marker) and not ran(replica_app, "primary", marker)
    if path.endswith("/export.csv"):
        assert on_replica.content == client_for(tree["city"]).get(url, params=params).content  # as the primary says
    elif "quarterly" not in path:  # (the report prints the time it was made)
        on_primary = client_for(tree["city"]).get(url, params=params).json()
        assert {**on_replica.json(), "as_of": None} == {**on_primary, "as_of": None}


def test_an_incident_export_reads_its_snapshot_from_the_replica(replica_app, on_replica_app, tree):
    exported = on_replica_app(tree["community"]).get("/api/v1/incidents/export.csv")
    assert exported.status_code == 200, exported.text
    assert ran(replica_app, "replica", "contact_phone") and not ran(replica_app, "primary", "contact_phone")


def test_writes_sign_in_tiles_and_the_change_feed_stay_on_the_primary(replica_app, on_replica_app, tree):
    worker, city = on_replica_app(tree["grid_worker"]), on_replica_app(tree["city"])
    assert worker.post("/api/v1/incidents", json=body()).status_code == 201
    assert city.get("/api/v1/map/changes", params={"cursor": "0.0"}).status_code == 200
    assert city.get("/api/v1/map/tiles/12/700/1635.mvt").status_code == 200
    assert ran(replica_app, "primary", "INSERT INTO incidents")
    assert replica_app.statements["replica"] == []


def test_the_worker_runs_an_export_job_on_the_replica_and_records_it_on_the_primary(replica_app, on_replica_app,
                                                                                  tree):
    community = on_replica_app(tree["community"])
    job = community.post("/api/v1/exports", json={"kind": "incidents", "format": "csv"})
    assert job.status_code == 202, job.text
    replica_app.statements.clear()
    with replica_app.app_context():
        assert one_pass().done == 1
    assert ran(replica_app, "replica", "contact_phone") and not ran(replica_app, "primary", "contact_phone")
    assert ran(replica_app, "primary", "UPDATE export_jobs")
    assert community.get(f"/api/v1/exports/{job.json()['id']}").json()["state"] == "done"


def test_the_replica_of_these_tests_refuses_writes(replica_app):
    with replica_app.app_context(), _db.engines[REPLICA].connect() as connection:
        with pytest.raises(InternalError, match="read-only transaction"):
            connection.execute(text("UPDATE regions SET name = name"))

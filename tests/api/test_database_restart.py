"""The database going away (a restart, a failover) at the end of a request, after the answer
was made: the answer stands. The request's read transaction can no longer be rolled back,
and that error must not turn a committed action's 200 into a bare 500 from the server."""
from __future__ import annotations

from flask import request
from sqlalchemy import text

from server.extensions import db as _db
from tests.api.test_incidents import act, report


def test_an_action_answered_before_the_database_restarts_stays_answered(app, tree, worker, community):
    iid = report(worker)["id"]
    path = f"/api/v1/incidents/{iid}/actions/accept"
    cut = []

    def database_restarts(response):
        """After the view (the action committed, the answer read in a new transaction) and
        before the request ends, the server closes the request's connection."""
        if request.path == path and not cut:
            backend = _db.session.execute(text("SELECT pg_backend_pid()")).scalar()
            with _db.engine.connect() as other:  # waits until the backend is gone
                cut.append(other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": backend}).scalar())
        return response

    version = community.get(f"/api/v1/incidents/{iid}").json()["version"]
    _db.session.rollback()
    pooled = _db.engine.pool.checkedout()
    app.after_request_funcs.setdefault(None, []).append(database_restarts)
    try:
        answer = act(community, iid, "accept", expect=200, version=version)
    finally:
        app.after_request_funcs[None].remove(database_restarts)
    assert cut == [True] and answer["status"] == "accepted"
    assert _db.engine.pool.checkedout() == pooled  # the dead connection was not kept
    again = community.get(f"/api/v1/incidents/{iid}")  # the next request has a working connection
    assert again.status_code == 200 and again.json()["status"] == "accepted"

"""What open maps hear of (docs/MAP.md): changed incidents after a cursor, polled or as
server-sent events, in scope, resumable, and bounded per process."""
from __future__ import annotations

import json
import threading

import pytest
import requests

from server.extensions import db
from tests.incident_builders import settle


def changes(client, cursor=None) -> dict:
    response = client.get("/api/v1/map/changes", params={"cursor": cursor} if cursor else {})
    assert response.status_code == 200, response.text
    return response.json()


def touch(*incidents, status="dispatched") -> None:
    """Change the incidents and wait until the feed may show them: until every transaction that
    was running has ended (other databases of the cluster hold the horizon back as well)."""
    for incident in incidents:
        incident.status = status
    settle()


def touch_later(app, incident_id: int, seconds: float) -> None:
    """Change an incident from another thread (another session) after ``seconds``."""
    from sqlalchemy import update

    from server.models import Incident

    def change():
        with app.app_context():
            db.session.execute(update(Incident).where(Incident.id == incident_id).values(status="dispatched"))
            db.session.commit()
            db.session.remove()

    threading.Timer(seconds, change).start()


def test_polling_sees_each_change_in_scope_once(tree, cases, client_for):
    community, street = client_for(tree["community"]), client_for(tree["street"])
    start = changes(community)
    assert start["features"] == [] and start["cursor"] and start["has_more"] is False
    street_start = changes(street)["cursor"]
    touch(cases["late"], cases["elsewhere"])
    got = changes(community, start["cursor"])
    assert [f["id"] for f in got["features"]] == [cases["late"].id]  # G3 is in another district
    late = got["features"][0]
    assert late["geometry"]["type"] == "Point"
    assert {k: late["properties"][k] for k in ("status", "light", "category", "open")} == {
        "status": "dispatched", "light": "red", "category": "0702", "open": True}
    assert changes(community, got["cursor"])["features"] == []  # once
    assert changes(street, street_start)["features"][0]["id"] == cases["late"].id


def test_a_department_hears_only_of_its_cases(tree, cases, client_for):
    police = client_for(tree["department"])
    start = changes(police)["cursor"]
    touch(cases["police"], cases["on_time"], status="in_progress")
    assert [f["id"] for f in changes(police, start)["features"]] == [cases["police"].id]


@pytest.mark.parametrize("cursor", ["abc", "1.2.3", "99999999999999999999.1", "-1.0", "1 .2",
                                    "1.9999999999999999999", "9223372036854775808.0"])
def test_a_bad_cursor_is_refused(tree, client_for, cursor):
    response = client_for(tree["community"]).get("/api/v1/map/changes", params={"cursor": cursor})
    assert response.status_code == 400 and response.json()["code"] == "map.invalid_cursor"


def test_cursors_at_either_end_of_the_range_are_answered(tree, cases, client_for):
    community = client_for(tree["community"])
    assert changes(community, "9223372036854775807.9223372036854775807")["features"] == []
    assert len(changes(community, "0.0")["features"]) == 5  # everything of the community, from the start


@pytest.fixture
def quick_streams(app):
    saved = {k: app.config[k] for k in ("MAP_STREAM_SECONDS", "MAP_STREAM_POLL_SECONDS", "MAP_STREAMS_PER_PROCESS")}
    app.config.update(MAP_STREAM_SECONDS=3, MAP_STREAM_POLL_SECONDS=0.1, MAP_STREAMS_PER_PROCESS=1)
    yield
    app.config.update(saved)


def events(response):
    """The server-sent events of a streamed response, as (event, id, data) until it ends."""
    event, ident, data = None, None, []
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if data or event:
                yield event, ident, "\n".join(data)
            event, data = None, []
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("id: "):
            ident = line[4:]
        elif line.startswith("data: "):
            data.append(line[6:])


def test_a_stream_sends_changes_as_they_happen_and_resumes_from_the_last_event(tree, cases, client_for,
                                                                                 quick_streams, app):
    community = client_for(tree["community"])
    url = community.base_url + "/api/v1/map/stream"
    headers = {"Authorization": f"Bearer {community.token}"}
    with requests.get(url, headers=headers, stream=True, timeout=10) as response:
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
        seen = events(response)
        kind, ready_id, data = next(seen)
        assert kind == "ready" and json.loads(data)["cursor"] == ready_id
        touch_later(app, cases["soon"].id, 0.3)
        kind, ident, data = next(seen)
        assert kind == "incidents" and [f["id"] for f in json.loads(data)["features"]] == [cases["soon"].id]
        assert list(seen) == []  # the stream ends after MAP_STREAM_SECONDS, with nothing more
    touch(cases["on_time"], status="in_progress")
    with requests.get(url, headers={**headers, "Last-Event-ID": ident}, stream=True, timeout=10) as again:
        seen = events(again)
        assert next(seen)[0] == "ready"
        kind, _, data = next(seen)  # what changed while it was away
        assert kind == "incidents" and [f["id"] for f in json.loads(data)["features"]] == [cases["on_time"].id]
        assert list(seen) == []  # to its end: the stream's slot is free again


def test_streams_are_bounded_per_process(tree, cases, client_for, quick_streams):
    community = client_for(tree["community"])
    url = community.base_url + "/api/v1/map/stream"
    headers = {"Authorization": f"Bearer {community.token}"}
    with requests.get(url, headers=headers, stream=True, timeout=10) as first:
        assert first.status_code == 200
        next(first.iter_lines())
        busy = requests.get(url, headers=headers, timeout=10)
        assert busy.status_code == 503 and busy.json()["code"] == "map.streams_busy"
        assert busy.headers["Retry-After"] == "5"
        for _ in first.iter_lines():  # to its end: the slot is free again for other tests
            pass
    bad = requests.get(url, headers=headers, params={"cursor": "nope"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["code"] == "map.invalid_cursor"

"""A region's escalation policy overrides over HTTP: managers set them inside their scope,
they must make valid policies, the deepest wins, and new reports below follow them."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest

from tests.api.test_incidents import report
from tests.builders import make_user


def url(region, suffix="escalation-overrides") -> str:
    return f"/api/v1/regions/{region.id}/{suffix}"


def test_a_street_sets_working_time_for_its_cells_and_new_reports_follow(tree, client_for):
    street, community = client_for(tree["street"]), client_for(tree["community"])
    response = street.put(url(tree["S1"]), json={"policy": {"time_basis": "working"}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["category"] is None and body["region"]["code"] == tree["S1"].code
    assert body["policy"] == {"time_basis": "working"}
    listed = community.get(url(tree["K1"])).json()  # what applies below: the street's override
    assert [o["id"] for o in listed] == [body["id"]]
    effective = community.get(url(tree["G1"], "escalation-policy"), params={"category": "0101"}).json()
    assert effective["policy"]["time_basis"] == "working" and effective["policy"]["top_level"] == "district"
    incident = report(client_for(tree["grid_worker"]), category="0101")
    stage = datetime.fromisoformat(incident["due_at"]) - datetime.fromisoformat(incident["stage_started_at"])
    assert stage > timedelta(days=1)  # 1,440 working minutes are more than a day


def test_the_deepest_override_wins_and_a_category_override_beats_the_all_categories_one(tree, client_for):
    admin, community = client_for(tree["admin"]), client_for(tree["community"])
    assert admin.put(url(tree["C"]), json={"policy": {"yellow_ratio": 0.5}}).status_code == 200
    assert community.put(url(tree["K1"]), json={"category": "0101", "policy": {"yellow_ratio": 0.6}}).status_code == 200
    assert community.put(url(tree["K1"]), json={"policy": {"yellow_ratio": 0.9}}).status_code == 200

    def ratio(code):
        return community.get(url(tree["G1"], "escalation-policy"), params={"category": code}).json()["policy"][
            "yellow_ratio"]

    assert (ratio("0101"), ratio("0102")) == (0.6, 0.9)
    assert [(o["region"]["level"], o["category"]) for o in community.get(url(tree["G1"])).json()] == [
        ("city", None), ("community", None), ("community", "0101")]
    again = community.put(url(tree["K1"]), json={"policy": {"yellow_ratio": 0.8}})  # replaces, not adds
    assert again.status_code == 200 and ratio("0102") == 0.8
    assert community.delete(url(tree["K1"]), params={"category": "0101"}).status_code == 204
    assert ratio("0101") == 0.8
    gone = community.delete(url(tree["K1"]), params={"category": "0101"})
    assert (gone.status_code, gone.json()["code"]) == (404, "escalation.no_override")


@pytest.mark.parametrize("body, code", [
    ({"policy": {"levels": {"grid": {"ack_minutes": 10, "resolve_minutes": 60}}}}, "escalation.invalid_policy"),
    ({"policy": {"yellow_ratio": 1.5}}, "escalation.invalid_policy"),
    ({"category": "0501", "policy": {"top_level": "community"}}, "escalation.invalid_policy"),  # gas starts at street
    ({"category": "01", "policy": {}}, "incident.invalid_category"),  # a group
    ({"category": "zz99", "policy": {}}, "incident.invalid_category"),
    ({"policy": {"time_basis": "lunar"}}, "request.invalid"),
    ({"policy": {}, "extra": 1}, "request.invalid"),
    ({}, "request.invalid"),
])
def test_overrides_that_would_make_a_bad_policy_are_refused_and_change_nothing(tree, client_for, body, code):
    street = client_for(tree["street"])
    response = street.put(url(tree["S1"]), json=body)
    assert (response.status_code, response.json()["code"]) == (422, code), response.text
    assert street.get(url(tree["S1"])).json() == []


def test_only_managers_inside_their_scope_change_overrides(tree, client_for):
    worker = client_for(tree["grid_worker"])
    refused = worker.put(url(tree["K1"]), json={"policy": {"yellow_ratio": 0.5}})
    assert (refused.status_code, refused.json()["code"]) == (403, "auth.forbidden")
    community = client_for(tree["community"])
    assert community.put(url(tree["S1"]), json={"policy": {"yellow_ratio": 0.5}}).status_code == 404  # above it
    outsider = client_for(make_user("community2", "community", tree["K2"]))
    assert outsider.get(url(tree["K1"])).status_code == 404
    assert outsider.get(url(tree["G1"], "escalation-policy"), params={"category": "0101"}).status_code == 404
    assert client_for(tree["street"]).get(url(tree["S1"])).json() == []


def test_the_same_override_set_at_once_makes_one(tree, client_for):
    street = client_for(tree["street"])
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(street.put(
        url(tree["S1"]), json={"policy": {"yellow_ratio": 0.6}}).status_code)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 6 and len(street.get(url(tree["S1"])).json()) == 1

"""A citizen's report through Open311 reaches the phones of the people who must act on it:
the supervisors of its start level (a located request) or the city's command centre (an
address only), through the outbox and the real firebase-admin path to the fake FCM; the
worker's pass also drops the clients' usage minutes older than two days."""
from __future__ import annotations

from datetime import timedelta

import requests
from sqlalchemy import func, select

from server.extensions import db as _db
from server.models import Open311Usage
from server.models._base import utcnow
from tests.builders import build_tree, standard_categories
from tests.worker_passes import one_pass, phone_of


def test_citizens_reports_are_pushed_to_who_takes_them(db, live_server, client_for, fake, sender):
    tree = build_tree()
    standard_categories()
    community, city = phone_of(tree["community"]), phone_of(tree["city"])
    key = client_for(tree["admin"]).post("/api/v1/open311/clients", json={"name": "随手拍"}).json()["api_key"]
    form = {"api_key": key, "service_code": "0101", "description": "路口一堆垃圾"}
    located = requests.post(f"{live_server}/open311/v2/requests.json", timeout=30,
                            data={**form, "lat": "34.02", "long": "-118.39"}).json()[0]["service_request_id"]
    requests.post(f"{live_server}/open311/v2/requests.json", data={**form, "address_string": "解放路"}, timeout=30)
    _db.session.rollback()
    _db.session.add(Open311Usage(client_id=1, minute=utcnow().replace(second=0, microsecond=0) - timedelta(days=3),
                                 calls=7))
    _db.session.commit()

    report = one_pass(sender, utcnow())
    assert report.push.sent == 2 and report.open311_usage_purged == 1
    (to_community,) = fake.sent_to(community)
    assert to_community["data"]["type"] == "citizen_report" and to_community["data"]["incident_id"] == located
    (to_city,) = fake.sent_to(city)
    assert to_city["data"]["type"] == "citizen_report" and to_city["data"]["open311_request_id"]
    _db.session.rollback()
    assert _db.session.scalar(select(func.sum(Open311Usage.calls))) == 2  # this minute's two posts stay

"""Phones registered for pushes: idempotent registration, one token one user, ownership."""
import pytest
from sqlalchemy import func, select

from server.models import Device
from server.models._base import utcnow
from tests.builders import build_tree

DEVICES = "/api/v1/me/devices"
TOKEN = "fcm-registration-token-" + "x" * 140


def _count(db):
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Device))


def _assert_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text


def test_registering_a_phone_is_201_then_200_for_the_same_token(http, db, client_for):
    tree = build_tree()
    worker = client_for(tree["grid_worker"])
    first = worker.post(DEVICES, json={"token": TOKEN, "platform": "android", "app_version": "1.0.0"})
    assert first.status_code == 201, first.text
    assert first.json()["token_kind"] == "registration_token" and first.json()["platform"] == "android"
    assert "token" not in first.json()
    again = worker.post(DEVICES, json={"token": TOKEN, "platform": "android", "app_version": "1.1.0"})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["app_version"] == "1.1.0"
    assert again.json()["last_seen_at"] >= first.json()["last_seen_at"]
    assert _count(db) == 1


def test_registering_again_re_enables_a_disabled_phone(http, db, client_for):
    tree = build_tree()
    worker = client_for(tree["grid_worker"])
    device_id = worker.post(DEVICES, json={"token": TOKEN, "platform": "ios"}).json()["id"]
    device = db.session.get(Device, device_id)
    device.disabled_at, device.disabled_reason = utcnow(), "UNREGISTERED"
    db.session.commit()
    response = worker.post(DEVICES, json={"token": TOKEN, "platform": "ios"})
    assert response.status_code == 200
    assert response.json()["disabled_at"] is None and response.json()["disabled_reason"] is None


def test_a_token_registered_by_another_user_moves_to_the_current_user(http, db, client_for):
    tree = build_tree()
    first = client_for(tree["grid_worker"])
    second = client_for(tree["community"])
    device_id = first.post(DEVICES, json={"token": TOKEN, "platform": "harmonyos"}).json()["id"]
    moved = second.post(DEVICES, json={"token": TOKEN, "platform": "harmonyos"})
    assert moved.status_code == 201, moved.text
    assert moved.json()["id"] == device_id
    assert first.get(DEVICES).json() == []
    assert [d["id"] for d in second.get(DEVICES).json()] == [device_id]
    assert _count(db) == 1


def test_an_installation_id_can_be_registered(http, client_for):
    tree = build_tree()
    response = client_for(tree["grid_worker"]).post(
        DEVICES, json={"token": "fid-123", "token_kind": "installation_id", "platform": "web"})
    assert response.status_code == 201
    assert response.json()["token_kind"] == "installation_id"


@pytest.mark.parametrize("body", [
    {"platform": "android"},
    {"token": "", "platform": "android"},
    {"token": "t" * 4097, "platform": "android"},
    {"token": TOKEN},
    {"token": TOKEN, "platform": "symbian"},
    {"token": TOKEN, "platform": "android", "token_kind": "apns"},
    {"token": TOKEN, "platform": "android", "app_version": "v" * 65},
    {"token": TOKEN, "platform": "android", "app_version": ""},
    {"token": 12345, "platform": "android"},
    {"token": TOKEN, "platform": "android", "user_id": 1},
])
def test_bad_device_bodies_are_422_and_write_nothing(http, db, client_for, body):
    tree = build_tree()
    response = client_for(tree["grid_worker"]).post(DEVICES, json=body)
    _assert_error(response, 422, "request.invalid")
    assert _count(db) == 0


def test_devices_need_a_signed_in_user(http):
    _assert_error(http.post(DEVICES, json={"token": TOKEN, "platform": "android"}), 401, "auth.required")
    _assert_error(http.get(DEVICES), 401, "auth.required")


def test_the_device_list_shows_only_ones_own_phones(http, client_for):
    tree = build_tree()
    worker = client_for(tree["grid_worker"])
    other = client_for(tree["community"])
    worker.post(DEVICES, json={"token": "a-token", "platform": "android"})
    worker.post(DEVICES, json={"token": "b-token", "platform": "ios"})
    other.post(DEVICES, json={"token": "c-token", "platform": "web"})
    listing = worker.get(DEVICES)
    assert listing.status_code == 200
    assert sorted(d["platform"] for d in listing.json()) == ["android", "ios"]


def test_removing_ones_own_phone(http, db, client_for):
    tree = build_tree()
    worker = client_for(tree["grid_worker"])
    device_id = worker.post(DEVICES, json={"token": TOKEN, "platform": "android"}).json()["id"]
    assert worker.delete(f"{DEVICES}/{device_id}").status_code == 204
    assert _count(db) == 0
    _assert_error(worker.delete(f"{DEVICES}/{device_id}"), 404, "device.not_found")


def test_a_phone_signs_out_by_its_token(http, db, client_for):
    tree = build_tree()
    worker = client_for(tree["grid_worker"])
    worker.post(DEVICES, json={"token": TOKEN, "platform": "android"})
    client_for(tree["community"]).post(DEVICES, json={"token": "someone-elses", "platform": "ios"})
    _assert_error(worker.delete(DEVICES, json={"token": "someone-elses"}), 404, "device.not_found")
    _assert_error(worker.delete(DEVICES, json={}), 422, "request.invalid")
    assert _count(db) == 2
    assert worker.delete(DEVICES, json={"token": TOKEN}).status_code == 204
    assert _count(db) == 1
    _assert_error(worker.delete(DEVICES, json={"token": TOKEN}), 404, "device.not_found")


def test_another_users_phone_is_404_and_stays(http, db, client_for):
    tree = build_tree()
    owner = client_for(tree["grid_worker"])
    device_id = owner.post(DEVICES, json={"token": TOKEN, "platform": "android"}).json()["id"]
    for who in ("community", "admin"):
        response = client_for(tree[who]).delete(f"{DEVICES}/{device_id}")
        _assert_error(response, 404, "device.not_found")
    assert _count(db) == 1


def test_a_device_id_beyond_32_bits_is_404(http, client_for):
    tree = build_tree()
    _assert_error(client_for(tree["grid_worker"]).delete(f"{DEVICES}/{2**31}"), 404, "http.not_found")


def test_a_phone_that_was_pushed_to_can_be_removed_and_its_pending_pushes_go_with_it(http, db, client_for):
    from server.models import OutboxMessage
    from server.services.notify import notify
    from tests.incident_builders import make_category, make_incident

    tree = build_tree()
    worker = client_for(tree["grid_worker"])
    device_id = worker.post(DEVICES, json={"token": TOKEN, "platform": "android"}).json()["id"]
    incident = make_incident(make_category("0101"), tree["G1"], tree["grid_worker"])
    assert notify([tree["grid_worker"].id], "task", incident, now=utcnow(), cause="test:pushed") == 1
    db.session.commit()
    pushes = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.device_id == device_id)
    assert db.session.scalar(pushes) == 1
    assert worker.delete(f"{DEVICES}/{device_id}").status_code == 204
    assert _count(db) == 0
    assert db.session.scalar(pushes) == 0

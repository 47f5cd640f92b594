"""Push delivery through the real firebase-admin code path against a fake FCM on loopback:
scripted 200 / 400 / 403 / 404 / 429 with Retry-After / 503 answers, dead devices, bounded
backoff, one send per outbox row, nothing after its expiry, and a crash between sending
and recording that re-sends once with the same message id."""
from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

import firebase_admin
import pytest
from firebase_admin import messaging
from sqlalchemy import select

from server.extensions import db as _db
from server.models import Device, Incident, OutboxAttempt, OutboxMessage
from server.models._base import utcnow
from server.notifications.dispatcher import dispatch, lease
from server.notifications.senders import FcmSender
from server.services import notify
from tests.builders import build_tree, standard_categories
from tests.incident_builders import make_incident


def test_the_firebase_admin_internals_the_sender_relies_on_are_still_there(sender, fake):
    """If firebase-admin moves these, pushes would go to the real FCM URL or retry for seconds
    inside the library: fail here, loudly, instead."""
    assert "{0}" in messaging._MessagingService.FCM_URL
    assert callable(messaging._get_messaging_service)
    from firebase_admin import _http_client
    assert isinstance(_http_client.HttpClient.session, property)
    assert sender._service._fcm_url.startswith(fake.url)


def test_the_sender_reads_the_environment_once_and_still_honours_its_proxy(fake, tmp_path, monkeypatch):
    """Proxies and the CA bundle from the environment apply to FCM, read when the sender starts
    (requests would read them, and ~/.netrc, again for every message)."""
    monkeypatch.setattr(messaging._MessagingService, "FCM_URL", "https://fcm.example.invalid/v1/projects/{0}/send")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "bundle.pem"))
    push = FcmSender(str(fake.service_account(tmp_path)), app_name=f"test-{uuid.uuid4()}")
    try:
        session = push._service._client.session
        assert session.trust_env is False
        assert session.proxies.get("https") == "http://127.0.0.1:3128"
        assert session.verify == str(tmp_path / "bundle.pem")
    finally:
        firebase_admin.delete_app(push._app)




@pytest.fixture
def case(db):
    tree = build_tree()
    category = standard_categories()["0702"]
    return tree, make_incident(category, tree["G1"], tree["grid_worker"])


def device(user, token: str, kind: str = "registration_token") -> Device:
    row = Device(user_id=user.id, token=token, token_kind=kind, platform="android")
    _db.session.add(row)
    _db.session.commit()
    return row


def queue(user, incident: Incident, cause: str, *, kind: str = "task", deadline: datetime | None = None) -> None:
    notify.notify([user.id], kind, incident, now=utcnow(), cause=cause,
                  deadline=deadline or utcnow() + timedelta(hours=1))
    _db.session.commit()


def rows() -> list[OutboxMessage]:
    _db.session.expire_all()
    return list(_db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_a_push_reaches_fcm_with_its_payload_priority_and_ttl(case, fake, sender):
    tree, incident = case
    device(tree["grid_worker"], "tok-ok")
    queue(tree["grid_worker"], incident, "c1")
    report = dispatch(utcnow(), sender)
    assert (report.sent, report.handled) == (1, 1)
    [message] = fake.sent_to("tok-ok")
    [row] = rows()
    assert row.status == "sent" and row.fcm_name.startswith("projects/fengqiao-test/messages/")
    assert message["data"]["message_id"] == str(row.message_id) and message["data"]["type"] == "task"
    assert message["android"]["priority"] == "high" and message["android"]["ttl"].endswith("s")
    assert 3000 < float(message["android"]["ttl"].rstrip("s")) <= 3600  # until the deadline
    assert message["apns"]["headers"]["apns-priority"] == "10"
    assert fake.token_requests == 1 and fake.unauthorised == 0  # the service account's token, fetched once


def test_an_installation_id_is_addressed_as_fid_and_a_registration_token_as_token(case, fake, sender):
    tree, incident = case
    device(tree["grid_worker"], "fid-1", kind="installation_id")
    device(tree["grid_worker"], "tok-1")
    queue(tree["grid_worker"], incident, "c1")
    assert dispatch(utcnow(), sender).sent == 2
    by_target = {("fid" if "fid" in s.message else "token"): s.token for s in fake.received}
    assert by_target == {"fid": "fid-1", "token": "tok-1"}


@pytest.mark.parametrize("status, code", [(404, "UNREGISTERED"), (403, "SENDER_ID_MISMATCH")])
def test_a_device_fcm_disowns_is_disabled_and_gets_nothing_more(case, fake, sender, status, code):
    tree, incident = case
    phone = device(tree["grid_worker"], "tok-gone")
    fake.script["tok-gone"] = [(status, {}, code)]
    queue(tree["grid_worker"], incident, "c1")
    assert dispatch(utcnow(), sender).dead == 1
    _db.session.refresh(phone)
    assert phone.disabled_at is not None and code in phone.disabled_reason
    assert rows()[0].status == "dead"
    queue(tree["grid_worker"], incident, "c2")  # a later notification: no push is queued for it
    assert len(rows()) == 1 and len(fake.sent_to("tok-gone")) == 1


def test_429_waits_at_least_its_retry_after_then_goes_through(case, fake, sender):
    tree, incident = case
    device(tree["grid_worker"], "tok-busy")
    fake.script["tok-busy"] = [(429, {"Retry-After": "120"}, "QUOTA_EXCEEDED")]
    queue(tree["grid_worker"], incident, "c1", deadline=utcnow() + timedelta(hours=2))
    now = utcnow()
    assert dispatch(now, sender).retried == 1
    [row] = rows()
    assert row.status == "pending" and row.next_attempt_at >= now + timedelta(seconds=120)
    assert dispatch(now + timedelta(seconds=60), sender).handled == 0  # not before Retry-After
    assert dispatch(row.next_attempt_at, sender).sent == 1
    outcomes = list(_db.session.scalars(select(OutboxAttempt.outcome).order_by(OutboxAttempt.id)))
    assert outcomes == ["retry", "sent"] and len(fake.sent_to("tok-busy")) == 2


@pytest.mark.parametrize("retry_after", ["1e999", "99999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_an_absurd_retry_after_waits_a_day_at_most_and_spoils_nothing_else(case, fake, sender, retry_after):
    """FCM's answers are untrusted input (OWASP API10): an endless wait once crashed the
    dispatcher's pass, leaving its whole batch to be sent again and again."""
    tree, incident = case
    device(tree["grid_worker"], "tok-odd")
    device(tree["grid_worker"], "tok-fine")
    fake.script["tok-odd"] = [(429, {"Retry-After": retry_after}, "QUOTA_EXCEEDED")]
    queue(tree["grid_worker"], incident, "c1", deadline=utcnow() + timedelta(days=3))
    now = utcnow()
    report = dispatch(now, sender)
    assert (report.sent, report.retried) == (1, 1)
    odd = next(row for row in rows() if row.status == "pending")
    assert now + timedelta(hours=23) < odd.next_attempt_at <= now + timedelta(days=1, seconds=1)


def test_503s_back_off_within_the_bound_and_give_up_with_the_reason(case, fake, sender, app, monkeypatch):
    tree, incident = case
    monkeypatch.setitem(app.config, "PUSH_MAX_ATTEMPTS", 4)
    device(tree["grid_worker"], "tok-down")
    fake.script["tok-down"] = [(503, {}, None)] * 10
    queue(tree["grid_worker"], incident, "c1", deadline=utcnow() + timedelta(days=1))
    now, waits = utcnow(), []
    for _ in range(4):
        dispatch(now, sender)
        row = rows()[0]
        if row.status != "pending":
            break
        waits.append((row.next_attempt_at - now).total_seconds())
        now = row.next_attempt_at
    assert row.status == "failed" and "gave up after 4 attempts" in row.last_error and "503" in row.last_error
    assert len(fake.sent_to("tok-down")) == 4  # one request per attempt: firebase-admin does not retry on its own
    base, cap = app.config["PUSH_RETRY_BASE_SECONDS"], app.config["PUSH_RETRY_CAP_SECONDS"]
    assert all(min(cap, base * 2 ** i) / 2 <= w <= min(cap, base * 2 ** i) for i, w in enumerate(waits))


def test_a_refused_message_fails_at_once(case, fake, sender):
    tree, incident = case
    device(tree["grid_worker"], "tok-bad")
    fake.script["tok-bad"] = [(400, {}, None)]
    queue(tree["grid_worker"], incident, "c1")
    assert dispatch(utcnow(), sender).failed == 1
    row = rows()[0]
    assert row.status == "failed" and "INVALID_ARGUMENT" in row.last_error


def test_nothing_is_sent_after_its_expiry(case, fake, sender):
    tree, incident = case
    device(tree["grid_worker"], "tok-late")
    queue(tree["grid_worker"], incident, "c1", deadline=utcnow() + timedelta(minutes=30))
    report = dispatch(utcnow() + timedelta(minutes=31), sender)
    assert report.expired == 1 and rows()[0].status == "expired" and fake.sent_to("tok-late") == []


def test_a_retry_that_would_arrive_after_the_expiry_expires_instead(case, fake, sender):
    tree, incident = case
    device(tree["grid_worker"], "tok-slow")
    fake.script["tok-slow"] = [(429, {"Retry-After": "3600"}, "QUOTA_EXCEEDED")]
    queue(tree["grid_worker"], incident, "c1", deadline=utcnow() + timedelta(minutes=30))
    assert dispatch(utcnow(), sender).expired == 1


def test_a_crash_between_sending_and_recording_resends_once_with_the_same_message_id(case, fake, sender):
    tree, incident = case
    device(tree["grid_worker"], "tok-crash")
    queue(tree["grid_worker"], incident, "c1")

    class CrashAfterSending:
        name = "crash"

        def send(self, pushes, now):
            sender.send(pushes, now)
            raise KeyboardInterrupt  # the process dies here: nothing is recorded

    now, held = utcnow(), lease()
    with pytest.raises(KeyboardInterrupt):
        dispatch(now, CrashAfterSending())
    _db.session.rollback()
    assert rows()[0].status == "sending"
    assert dispatch(now + held / 2, sender).handled == 0  # the lease still runs
    again = dispatch(now + held, sender)
    assert (again.reclaimed, again.sent) == (1, 1)
    first, second = fake.sent_to("tok-crash")
    assert first["data"]["message_id"] == second["data"]["message_id"] == str(rows()[0].message_id)
    assert dispatch(now + held * 3, sender).handled == 0 and len(fake.sent_to("tok-crash")) == 2


def test_two_dispatchers_side_by_side_send_each_row_once(case, fake, sender, app):
    tree, incident = case
    for i in range(6):
        device(tree["grid_worker"], f"tok-{i}")
    for i in range(5):
        queue(tree["grid_worker"], incident, f"c{i}")
    assert len(rows()) == 30
    now = utcnow()

    def run():
        with app.app_context():
            dispatch(now, sender, batch=4)
            _db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake.received) == 30 and {r.status for r in rows()} == {"sent"}
    ids = [s.message["data"]["message_id"] for s in fake.received]
    assert len(set(ids)) == 30


def test_without_credentials_pushes_are_logged_not_sent(case, app, caplog):
    tree, incident = case
    device(tree["grid_worker"], "tok-log")
    queue(tree["grid_worker"], incident, "c1")
    from server.notifications import sender_from_config
    logging_sender = sender_from_config()
    assert logging_sender.name == "log"
    with caplog.at_level("INFO", logger="fengqiao.push"):
        assert dispatch(utcnow(), logging_sender).sent == 1
    assert "no FCM credentials" in caplog.text and "task" in caplog.text

"""The phone's inbox (/me/notifications) and quiet hours (/me/quiet-hours) over HTTP."""
from __future__ import annotations

import pytest

from tests.api.test_incidents import act, report

INBOX = "/api/v1/me/notifications"





def dispatched(tree, worker, community) -> int:
    iid = report(worker)["id"]
    act(community, iid, "accept")
    act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id)
    return iid


def test_my_inbox_lists_what_i_was_told_newest_first_with_the_unread_count(tree, worker, community):
    first, second = dispatched(tree, worker, community), dispatched(tree, worker, community)
    page = worker.get(INBOX).json()
    assert page["total"] == 2 and page["unread"] == 2
    assert [n["incident_id"] for n in page["items"]] == [second, first]
    item = page["items"][0]
    assert item["kind"] == "task" and item["kind_label"] == {"zh": "新任务", "en": "New task"}
    assert item["title"] == "新任务" and item["urgent"] is True and item["read_at"] is None
    assert item["level_label"] == {"zh": "网格", "en": "Grid cell"} and f"#{second}" in item["body"]
    assert community.get(INBOX).json()["total"] == 0  # not told of their own dispatches


def test_reading_one_or_all_up_to_an_id(tree, worker, community):
    for _ in range(3):
        dispatched(tree, worker, community)
    ids = [n["id"] for n in worker.get(INBOX).json()["items"]]  # newest first
    read = worker.post(f"{INBOX}/{ids[0]}/read")
    assert read.status_code == 200 and read.json()["read_at"]
    assert worker.post(f"{INBOX}/{ids[0]}/read").json()["read_at"] == read.json()["read_at"]  # once
    assert worker.get(INBOX, params={"unread": "true"}).json()["total"] == 2
    assert worker.post(f"{INBOX}/read", json={"up_to_id": ids[2]}).json() == {"marked": 1}
    assert worker.post(f"{INBOX}/read", json={"up_to_id": ids[0]}).json() == {"marked": 1}
    page = worker.get(INBOX).json()
    assert page["unread"] == 0 and worker.get(INBOX, params={"unread": "false"}).json()["total"] == 3


def test_nobody_reads_another_persons_notifications(tree, worker, community):
    dispatched(tree, worker, community)
    nid = worker.get(INBOX).json()["items"][0]["id"]
    response = community.post(f"{INBOX}/{nid}/read")
    assert (response.status_code, response.json()["code"]) == (404, "notification.not_found")
    assert community.post(f"{INBOX}/read", json={"up_to_id": nid}).json() == {"marked": 0}
    assert worker.get(INBOX).json()["unread"] == 1


@pytest.mark.parametrize("body", [{"up_to_id": 0}, {"up_to_id": "7"}, {}, {"up_to_id": 1, "x": 1}])
def test_bad_read_requests_are_422(tree, worker, body):
    assert worker.post(f"{INBOX}/read", json=body).status_code == 422


def test_quiet_hours_are_set_together_and_cleared_together(tree, worker):
    assert worker.get("/api/v1/me/quiet-hours").json() == {"quiet_from": None, "quiet_to": None}
    set_ = worker.put("/api/v1/me/quiet-hours", json={"quiet_from": "22:00", "quiet_to": "07:00"})
    assert set_.status_code == 200 and set_.json() == {"quiet_from": "22:00:00", "quiet_to": "07:00:00"}
    for bad in ({"quiet_from": "22:00", "quiet_to": None}, {"quiet_from": "25:00", "quiet_to": "07:00"},
                {"quiet_from": "22:00"}, {"quiet_from": "22:00", "quiet_to": "07:00", "extra": True}):
        assert worker.put("/api/v1/me/quiet-hours", json=bad).status_code == 422, bad
    assert worker.get("/api/v1/me/quiet-hours").json()["quiet_from"] == "22:00:00"  # unchanged
    cleared = worker.put("/api/v1/me/quiet-hours", json={"quiet_from": None, "quiet_to": None}).json()
    assert cleared == {"quiet_from": None, "quiet_to": None}


def test_the_inbox_needs_a_signed_in_user(http):
    assert http.get(INBOX).status_code == 401
    assert http.put("/api/v1/me/quiet-hours", json={"quiet_from": None, "quiet_to": None}).status_code == 401

"""Builders for inspection campaign tests: the small city's street S1 grown to five cells in
two communities, with workers as primary, backup only, and none."""
from __future__ import annotations

import uuid
from datetime import timedelta

from server.models._base import utcnow
from tests.builders import assign, make_region, make_user

CAMPAIGNS = "/api/v1/campaigns"
IN_G1 = [-118.3875, 34.025]
IN_G2 = [-118.3625, 34.025]
IN_G4 = [-118.3875, 34.075]
IN_G3 = [-118.275, 34.025]


def grow_street(tree) -> dict:
    """S1 = K1 (G1 worker1 primary, G2 worker2 primary) + K3 (G4 worker4 backup only, G5 nobody),
    with a supervisor of K3. Returns the new regions and users by name."""
    k3 = make_region("440101001002", "community", (-118.40, 34.05, -118.35, 34.10), tree["S1"])
    g4 = make_region("44010100100201", "grid", (-118.40, 34.05, -118.375, 34.10), k3)
    g5 = make_region("44010100100202", "grid", (-118.375, 34.05, -118.35, 34.10), k3)
    worker2 = make_user("worker2", "grid_worker", tree["K1"])
    worker4 = make_user("worker4", "grid_worker", k3)
    assign(worker2, tree["G2"], "primary")
    assign(worker2, tree["G1"], "backup")  # G1 keeps worker1 as its primary
    assign(worker4, g4, "backup")
    community3 = make_user("community3", "community", k3)
    return {"K3": k3, "G4": g4, "G5": g5, "worker2": worker2, "worker4": worker4, "community3": community3}


def campaign_body(region, **overrides) -> dict:
    body = {"client_uuid": str(uuid.uuid4()), "region_id": region.id, "title": "燃气与消防安全隐患排查",
            "category_groups": ["05"], "deadline": (utcnow() + timedelta(days=3)).isoformat()}
    body.update(overrides)
    return body


def launch(client, region, expect=201, **overrides) -> dict:
    response = client.post(CAMPAIGNS, json=campaign_body(region, **overrides))
    assert response.status_code == expect, response.text
    return response.json()


def tasks_by_cell(client, campaign_id: int) -> dict:
    """The campaign's tasks the client is shown, by cell code."""
    page = client.get(f"{CAMPAIGNS}/{campaign_id}/tasks", params={"page_size": 500}).json()
    return {task["cell"]["code"]: task for task in page["items"]}

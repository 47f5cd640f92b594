"""Fixtures of the incident API tests: the small city with the standard categories, and
signed-in clients of its grid worker, community and street, and the cases the map tests draw."""
from __future__ import annotations

from datetime import timedelta

import pytest

from server.models._base import utcnow
from tests.builders import build_tree, standard_categories
from tests.incident_builders import make_incident, make_task, point_in


@pytest.fixture
def tree(db):
    tree = build_tree()
    standard_categories()
    return tree


@pytest.fixture
def worker(tree, client_for):
    return client_for(tree["grid_worker"])


@pytest.fixture
def community(tree, client_for):
    return client_for(tree["community"])


@pytest.fixture
def street(tree, client_for):
    return client_for(tree["street"])


@pytest.fixture
def cases(tree):
    """Open cases in G1 (one overdue, one on time), one due soon in G2, one closed in G2, one in G3
    (the other district), and one in G2 dispatched to the street's police station."""
    fight = standard_categories()["0702"]
    noise = standard_categories()["0701"]
    now = utcnow()
    late = dict(status="accepted", due_at=now - timedelta(hours=1), yellow_at=now - timedelta(hours=3))
    on_time = dict(status="accepted", due_at=now + timedelta(hours=5), yellow_at=now + timedelta(hours=4))
    soon = dict(status="accepted", due_at=now + timedelta(hours=1), yellow_at=now - timedelta(minutes=5))
    made = {
        "late": make_incident(fight, tree["G1"], tree["grid_worker"], at=point_in(tree["G1"], 0.3, 0.3), **late),
        "on_time": make_incident(noise, tree["G1"], tree["grid_worker"], at=point_in(tree["G1"], 0.6, 0.6),
                                 **on_time),
        "soon": make_incident(fight, tree["G2"], tree["grid_worker"], at=point_in(tree["G2"], 0.4, 0.5), **soon),
        "closed": make_incident(fight, tree["G2"], tree["grid_worker"], status="closed",
                                at=point_in(tree["G2"], 0.7, 0.2)),
        "elsewhere": make_incident(fight, tree["G3"], None, at=point_in(tree["G3"]), **late),
        "police": make_incident(noise, tree["G2"], None, at=point_in(tree["G2"], 0.2, 0.8), **on_time),
    }
    made["police"].status = "dispatched"
    make_task(made["police"], department=tree.department)
    return made

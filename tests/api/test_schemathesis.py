"""The whole API against its own OpenAPI document (schemathesis): every operation, as a
street supervisor and as a grid worker, with schema-valid and schema-violating input, over
real HTTP on a small city with cases, photos, a campaign, a patrol, an export job, a phone
and an Open311 request waiting to be placed. Then the same two users walk the links
schemathesis infers between operations (a list's ids into the item, the item into its
actions) as a state machine.

Checks: every built-in one but ``positive_data_acceptance``. That check expects a 2xx for any
schema-valid input; ours refuses schema-valid input for rules a schema cannot say (a point
outside every grid cell, ``to`` before ``from``, a category code that does not exist, a
blank name, a NUL character, the version an action must carry) with 4xx codes of their own,
which the other checks hold to the document. So: no 5xx, every status and content type
documented, every body valid against its schema, schema-violating input refused, nothing
served without a token, a deleted thing gone.

Examples are bounded (``EXAMPLES`` per operation and user, ``STEPS`` a walk) so the suite
stays minutes long; ``SCHEMATHESIS_EXAMPLES`` raises them for a deeper run."""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from server import create_app
from server.extensions import api
from server.models._base import utcnow
from server.extensions import db
from server.models import AuthSession
from server.services import auth
from tests.builders import PASSWORD, build_tree, standard_categories
from tests.campaign_builders import launch
from tests.images import jpeg
from tests.incident_builders import map_cases

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "10"))
STEPS = int(os.environ.get("SCHEMATHESIS_STEPS", "40"))
ACTORS = ("street", "grid_worker")
EXCLUDED = [positive_data_acceptance]


def _spec() -> dict:
    """The document the server serves, built without a database (the app connects lazily)."""
    create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://nobody@/none?host=/nonexistent"})
    return api.spec.to_dict()


SCHEMA = schemathesis.openapi.from_dict(_spec())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@dataclass
class World:
    actor: str
    tree: object
    known: dict[str, list]  # ids by path parameter name
    headers: Callable[[], dict]  # the bearer header of a new session of the user


def _world(tree, client_for) -> dict[str, list]:
    """Things of every kind the API names by id, made through the API where it can; returns
    the ids each path parameter may take (the other district's included)."""
    cases = map_cases(tree)
    worker, street = client_for(tree["grid_worker"]), client_for(tree["street"])
    admin = client_for(tree["admin"])
    photo = worker.post(f"/api/v1/incidents/{cases['late'].id}/photos", data={"kind": "report"},
                        files={"file": ("a.jpg", jpeg(), "image/jpeg")})
    assert photo.status_code == 201, photo.text
    device = worker.post("/api/v1/me/devices", json={"token": "fcm-token-" + "x" * 40, "platform": "android"})
    assert device.status_code == 201, device.text
    patrol = worker.post("/api/v1/patrols", json={"client_uuid": str(uuid.uuid4())})
    assert patrol.status_code == 201, patrol.text
    campaign = launch(street, tree["S1"])
    job = street.post("/api/v1/exports", json={"kind": "incidents", "format": "csv"})
    assert job.status_code in (201, 202), job.text
    leave = street.post(f"/api/v1/users/{tree['grid_worker'].id}/leaves", json={
        "starts_at": utcnow().isoformat(), "ends_at": (utcnow() + timedelta(days=2)).isoformat(), "reason": "年假"})
    assert leave.status_code == 201, leave.text
    client = admin.post("/api/v1/open311/clients", json={"name": "市民通"})
    assert client.status_code == 201, client.text
    citizen = admin.post("/open311/v2/requests.json", data={
        "api_key": client.json()["api_key"], "service_code": "0101", "address_string": "解放北路 1 号"})
    assert citizen.status_code == 201, citizen.text
    unlocated = admin.get("/api/v1/open311/unlocated").json()["items"]
    return {
        "incident_id": [case.id for case in cases.values()],
        "photo_id": [photo.json()["id"]],
        "device_id": [device.json()["id"]],
        "patrol_id": [patrol.json()["id"]],
        "campaign_id": [campaign["id"]],
        "job_id": [job.json()["id"]],
        "leave_id": [leave.json()["id"]],
        "client_id": [client.json()["id"]],
        "request_id": [item["id"] for item in unlocated],
        "user_id": [user.id for user in tree.users.values()],
        "region_id": [region.id for region in tree.regions.values()],
        "department_id": [tree.department.id],
    }


@pytest.fixture(scope="module", params=ACTORS)
def world(request, app, live_server):
    """One city per user, built once: the operations run one after the other on it, so what
    one creates or changes, the next meets (each test gets a session of its own)."""
    from tests.conftest import ApiClient, empty_database

    def client_for(user):
        return ApiClient(live_server).login(user.username, PASSWORD)

    empty_database()
    tree = build_tree()
    standard_categories()
    known = _world(tree, client_for)
    user = tree[request.param]

    def headers() -> dict:
        # a session of its own for each test (a fuzzed sign-out ends the one it is sent in),
        # minted rather than signed in: the fuzzed sign-ins, with user names the API has
        # shown, soon meet the sign-in throttle, as they should
        session = AuthSession(id=uuid.uuid4(), user_id=user.id, client_ip="127.0.0.1", user_agent="schemathesis",
                              expires_at=utcnow() + timedelta(days=1))
        db.session.add(session)
        db.session.commit()
        token = auth.access_token_for(session, user)
        db.session.rollback()  # no transaction left open while the server works (the change feed waits for those)
        return {"Authorization": f"Bearer {token}"}

    yield World(request.param, tree, known, headers)
    db.session.rollback()


def _cases(operation, known: dict[str, list]):
    """Schema-valid and schema-violating cases, half of the valid ones naming things that
    exist (random ids are mostly 404s, which say little)."""
    modes = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
    names = [p.name for p in operation.path_parameters]
    if names and all(known.get(name) for name in names):
        modes.append(st.fixed_dictionaries({name: st.sampled_from(known[name]) for name in names}).flatmap(
            lambda ids: operation.as_strategy(GenerationMode.POSITIVE, path_parameters=ids)))
    return st.one_of(modes)


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: f"{o.method.upper()} {o.path}")
def test_every_operation_holds_to_the_document(world, operation, live_server, app, monkeypatch):
    monkeypatch.setitem(app.config, "MAP_STREAM_SECONDS", 1)  # a map's stream: a second, not 25
    monkeypatch.setitem(app.config, "MAP_STREAM_POLL_SECONDS", 0.2)
    headers = world.headers()

    @given(case=_cases(operation, world.known))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(base_url=live_server, headers=headers, excluded_checks=EXCLUDED, timeout=60)

    run()


def test_walking_the_links_holds_to_the_document(world, live_server, app, monkeypatch):
    monkeypatch.setitem(app.config, "MAP_STREAM_SECONDS", 1)
    monkeypatch.setitem(app.config, "MAP_STREAM_POLL_SECONDS", 0.2)
    headers = world.headers()

    class Walk(SCHEMA.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"base_url": live_server, "headers": headers, "timeout": 60}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, excluded_checks=EXCLUDED, transport_kwargs=kwargs or None)

    run_state_machine_as_test(Walk, settings=settings(
        max_examples=max(EXAMPLES // 2, 3), stateful_step_count=STEPS, deadline=None, database=None,
        derandomize=True, suppress_health_check=list(HealthCheck)))

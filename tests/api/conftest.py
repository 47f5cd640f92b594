"""Fixtures of the incident API tests (the small city, ``tree``, is tests/conftest.py's): signed-in
clients of its grid worker, community and street, and the cases the map tests draw."""
from __future__ import annotations

import pytest

from tests.incident_builders import map_cases


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
    """The cases the map tests draw (tests.incident_builders.map_cases)."""
    return map_cases(tree)

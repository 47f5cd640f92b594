"""Reading the environment: the database settings that scaling out turns (docs/OPERATIONS.md), and
settings refused at start because they would be unsafe."""
from __future__ import annotations

import pytest

from server.config import load_config


@pytest.fixture
def environment(monkeypatch):
    monkeypatch.setenv("FENGQIAO_SECRET_KEY", "test-" + "k" * 32)  # no key file written

    def load(**variables) -> dict:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return load_config()

    return load


def test_by_default_no_replica_sqlalchemys_pool_and_psycopgs_preparing(environment):
    config = environment()
    assert config["SQLALCHEMY_BINDS"] == {}
    options = config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert (options["pool_size"], options["max_overflow"], options["connect_args"]) == (5, 10, {"prepare_threshold": 5})


def test_a_read_replica_is_the_replica_bind_in_psycopgs_spelling(environment):
    config = environment(FENGQIAO_READ_DATABASE_URL="postgres://reader@replica.internal/fengqiao")
    assert config["SQLALCHEMY_BINDS"] == {"replica": "postgresql+psycopg://reader@replica.internal/fengqiao"}


@pytest.mark.parametrize("value, threshold", [("off", None), ("OFF", None), ("none", None), ("0", 0), ("12", 12)])
def test_preparing_can_be_turned_off_for_an_old_pgbouncer(environment, value, threshold):
    config = environment(FENGQIAO_DB_PREPARE_THRESHOLD=value, FENGQIAO_DB_MAX_OVERFLOW="3")
    options = config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["connect_args"] == {"prepare_threshold": threshold} and options["max_overflow"] == 3


def test_a_short_secret_key_stops_the_start(environment):
    """An HS256 key shorter than 32 bytes can be guessed offline from any one access token."""
    with pytest.raises(ValueError, match="at least 32 bytes"):
        environment(FENGQIAO_SECRET_KEY="changeme")
    assert environment(FENGQIAO_SECRET_KEY="x" * 32)["SECRET_KEY"] == "x" * 32

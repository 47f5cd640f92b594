"""Backup and restore (``flask backup``), end to end: data made through the API (a report with
photos, a photo added later, an export job's file), a backup, its restore into a new database
and a new photo directory, and the restored copy served by an app of its own, read through
the API. And the restores refused before anything is changed: a database that is not empty, a
damaged part, a migration this version does not know."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from werkzeug.serving import make_server

from server import create_app
from server.extensions import db as _db
from tests.api.test_export_jobs import one_pass
from tests.api.test_incidents import body, multipart
from tests.builders import PASSWORD
from tests.conftest import ApiClient
from tests.images import jpeg


@pytest.fixture
def new_database(app):
    """Make a new, empty database on the test server: ``new_database(suffix, owner=…)`` → its
    URL. With an ``owner``, a role made for the test that is not a superuser, the database is
    that role's and the URL connects as it; PostGIS is created in it first by the superuser, as
    an administrator would (a role that is not a superuser may not create it). Without one the
    database is bare and the restore creates PostGIS. Databases and roles are dropped after."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    databases, roles = [], []

    def make(suffix: str, owner: str | None = None) -> str:
        name = f"{url.database}_{suffix}"[:63]
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            try:
                if owner:
                    connection.execute(text(f'DROP ROLE IF EXISTS "{owner}"'))
                    connection.execute(text(f'CREATE ROLE "{owner}" LOGIN NOSUPERUSER'))
                    roles.append(owner)
                connection.execute(text(f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else "")))
            except ProgrammingError as exc:
                pytest.fail("a restore needs a database of its own: the test database's role must be allowed to "
                            f"create databases and roles (CREATEDB, CREATEROLE): {exc.orig}")
        databases.append(name)
        made = url.set(database=name)
        if owner:
            engine = create_engine(made)
            with engine.begin() as connection:
                connection.execute(text("CREATE EXTENSION postgis"))
            engine.dispose()
            made = made.set(username=owner)
        return made.render_as_string(hide_password=False)

    yield make
    with admin.connect() as connection:
        for name in databases:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        for role in roles:
            connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
    admin.dispose()


@pytest.fixture
def restored_app(tmp_path):
    """Make an app on another database and photo directory: ``restored_app(url)``."""
    apps = []

    def make(database_url: str):
        made = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url,
                           "PHOTO_DIR": str(tmp_path / "restored-photos"), "PASSWORD_PROFILE": "CHEAPEST"})
        apps.append(made)
        return made

    yield make
    for made in apps:
        with made.app_context():
            _db.engine.dispose()


def run(app, *args: str):
    """``flask …`` in ``app``'s context (the CLI runs in the context already pushed, if any)."""
    with app.app_context():
        return app.test_cli_runner().invoke(args=list(args))


def back_up(app, directory: Path) -> Path:
    result = run(app, "backup", "create", str(directory))
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


def restore(app, backup: Path, *options: str):
    return run(app, "backup", "restore", *options, str(backup))


def objects_in(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.scalars(text(
                "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' ORDER BY 1")).all()
    finally:
        engine.dispose()


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()) \
        if directory.exists() else []


def test_a_restored_backup_serves_the_same_incidents_photos_exports_and_users(
        app, tree, client_for, new_database, restored_app, tmp_path):
    roles = ("grid_worker", "community", "admin")
    names = [tree[role].username for role in roles]  # the worker's pass below ends the session
    worker, community, admin = (client_for(tree[role]) for role in roles)
    first, second, later = (jpeg(colour=colour) for colour in ((200, 10, 10), (10, 200, 10), (10, 10, 200)))
    answer = multipart(worker, body(description="井盖缺失"), {"report": first, "before": second})
    assert answer.status_code == 201, answer.text
    incident_id = answer.json()["id"]
    added = worker.post(f"/api/v1/incidents/{incident_id}/photos", data={"kind": "evidence"},
                        files={"file": ("c.jpg", later, "image/jpeg")})
    assert added.status_code == 201, added.text
    job = community.post("/api/v1/exports", json={"kind": "incidents", "format": "csv"})
    assert job.status_code == 202, job.text
    assert one_pass().done == 1
    before = {
        "incident": worker.get(f"/api/v1/incidents/{incident_id}").json(),
        "users": admin.get("/api/v1/users").json(),
        "export": community.get(f"/api/v1/exports/{job.json()['id']}/file").content,
    }
    photos = {p["kind"]: p for p in before["incident"]["photos"]}
    assert set(photos) == {"report", "before", "evidence"}

    backup = back_up(app, tmp_path / "backups")
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["revision"] and manifest["counts"]["incident_photos"] == 3
    assert manifest["blobs"]["files"] == 3 * 2 + 1  # each photo's original and public copy, the export file

    # the application's own role, owner of a new database with PostGIS: the restore keeps PostGIS as it is
    target = new_database("restored", owner=f"{make_url(app.config['SQLALCHEMY_DATABASE_URI']).database}_app")
    restored = restored_app(target)
    result = restore(restored, backup)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("OK")

    server = make_server("127.0.0.1", 0, restored, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert ApiClient(base).get("/readyz").status_code == 200
        worker2, community2, admin2 = (ApiClient(base).login(name, PASSWORD) for name in names)
        incident = worker2.get(f"/api/v1/incidents/{incident_id}").json()
        for key in ("id", "status", "description", "reported_at", "location", "cell", "timeline", "photos",
                    "version"):
            assert incident[key] == before["incident"][key], key
        for kind, data in (("report", first), ("before", second), ("evidence", later)):
            served = worker2.get(photos[kind]["url"])
            assert served.status_code == 200 and served.content == data, kind
        users = admin2.get("/api/v1/users").json()
        assert [u["username"] for u in users["items"]] == [u["username"] for u in before["users"]["items"]]
        assert community2.get(f"/api/v1/exports/{job.json()['id']}/file").content == before["export"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_restore_into_a_database_that_is_not_empty_is_refused_and_changes_nothing(
        app, tree, client_for, new_database, restored_app, tmp_path):
    worker = client_for(tree["grid_worker"])
    assert multipart(worker, body(), {"report": jpeg()}).status_code == 201
    backup = back_up(app, tmp_path / "backups")
    target = new_database("not_empty")
    engine = create_engine(target)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE kept (id int)"))
    engine.dispose()

    result = restore(restored_app(target), backup)
    assert result.exit_code == 1
    assert "is not empty (1 tables, views or sequences: public.kept)" in result.output
    assert objects_in(target) == ["kept"] and files_under(tmp_path / "restored-photos") == []


def damage(backup: Path, tmp_path: Path, how: str) -> Path:
    """A copy of ``backup`` damaged ``how``."""
    copy = tmp_path / f"damaged-{how}"
    copy.mkdir()
    for part in backup.iterdir():
        (copy / part.name).write_bytes(part.read_bytes())
    if how == "flipped":
        data = bytearray((copy / "database.dump").read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / "database.dump").write_bytes(bytes(data))
    elif how == "truncated":
        data = (copy / "blobs.tar").read_bytes()
        (copy / "blobs.tar").write_bytes(data[:len(data) // 2])
    elif how == "unknown_revision":
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["revision"] = "9999"
        (copy / "manifest.json").write_text(json.dumps(manifest))
    else:  # unfinished: no manifest
        (copy / "manifest.json").unlink()
    return copy


@pytest.mark.parametrize("how, message", [
    ("flipped", "database.dump: its SHA-256 is not the one in the manifest"),
    ("truncated", "blobs.tar has"),
    ("unknown_revision", "migration 9999, which this version of Fengqiao does not know"),
    ("unfinished", "has no manifest.json"),
])
def test_a_damaged_backup_is_refused_before_anything_is_changed(
        app, tree, client_for, new_database, restored_app, tmp_path, how, message):
    worker = client_for(tree["grid_worker"])
    assert multipart(worker, body(), {"report": jpeg()}).status_code == 201
    damaged = damage(back_up(app, tmp_path / "backups"), tmp_path, how)
    target = new_database("damaged")

    result = restore(restored_app(target), damaged)
    assert result.exit_code == 1 and message in result.output, result.output
    assert objects_in(target) == [] and files_under(tmp_path / "restored-photos") == []
    if how != "unknown_revision":
        verified = run(app, "backup", "verify", str(damaged))
        assert verified.exit_code == 1 and message in verified.output

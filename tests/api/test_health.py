from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text

from server.models import CalendarDay
from server.services.calendar import PACKAGE_YEARS


def test_healthz_answers_without_database_work(http):
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_migrated_database(http):
    response = http.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["revision"] == newest_migrations()


def test_readyz_is_unready_below_the_newest_migration_and_ready_past_it(http, db):
    """A new process waits for `flask db upgrade`; an old one keeps serving after it (a rolling
    deploy), with a warning."""
    head = newest_migrations()[0]
    try:
        db.session.execute(text("UPDATE alembic_version SET version_num = '0019'"))
        db.session.commit()
        older = http.get("/readyz")
        assert older.status_code == 503
        assert older.json() == {"status": "unavailable", "database": "migrations pending", "current": ["0019"],
                                "expected": [head]}
        db.session.execute(text("UPDATE alembic_version SET version_num = '9999_from_a_newer_version'"))
        db.session.commit()
        newer = http.get("/readyz")
        assert newer.status_code == 200 and newer.json()["revision"] == ["9999_from_a_newer_version"]
        assert newer.json()["warnings"][0].startswith("schema: at 9999_from_a_newer_version, newer than this "
                                                      f"version's {head}")
    finally:
        db.session.rollback()
        db.session.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
        db.session.commit()
    assert http.get("/readyz").status_code == 200


def newest_migrations() -> list[str]:
    """The head revisions of the migrations in the repository (Alembic's own reading)."""
    from pathlib import Path

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).resolve().parents[2] / "migrations"))
    return sorted(ScriptDirectory.from_config(config).get_heads())


def test_openapi_spec_and_docs_are_served(http):
    spec = http.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    assert spec.json()["openapi"].startswith("3.")
    assert "bearerAuth" in spec.json()["components"]["securitySchemes"]
    docs = http.get("/api/v1/docs")
    assert docs.status_code == 200
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text
    bundle = http.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000


def test_unknown_path_is_json_404(http):
    response = http.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "http.not_found"


def test_the_root_leads_to_the_map(http):
    response = http.get("/", allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/map")
    page = http.get("/map")
    assert page.status_code == 200 and "/static/vendor/maplibre-gl/maplibre-gl.js" in page.text
    assert http.get("/static/vendor/maplibre-gl/maplibre-gl.js").status_code == 200  # served here, not by a CDN


def test_readyz_warns_of_a_year_without_a_holiday_schedule_until_one_is_entered(http, db):
    year = datetime.now(ZoneInfo("Asia/Shanghai")).year
    uncovered = [y for y in (year, year + 1) if y not in PACKAGE_YEARS]
    body = http.get("/readyz").json()
    assert body["status"] == "ready"  # a warning, not unreadiness
    assert [w.split(";")[0] for w in body["warnings"]] == [f"calendar: no holiday schedule for {y}" for y in uncovered]
    for y in uncovered:
        db.session.add(CalendarDay(day=date(y, 1, 1), is_workday=False, name="元旦"))
    db.session.commit()
    assert http.get("/readyz").json()["warnings"] == []

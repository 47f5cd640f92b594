"""Export jobs (docs/STATS.md "Exports"): asked for over HTTP, run by the worker's pass on a
clock of the test's, followed through their progress, fetched by their owner alone; the
owner's scope at run time, masking, bad filters never queued, two workers, silent runs,
failures with their codes, expiry."""
from __future__ import annotations

import csv
import io
import threading
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select, text

from server import worker
from server.extensions import db
from server.models import ExportJob, User
from server.models._base import utcnow
from server.notifications.senders import LoggingSender
from server.services import export_jobs, exports
from server.services.photos import blob_store


def one_pass(at=None) -> export_jobs.ExportReport:
    """One pass of the worker, its clock at ``at`` (default: now)."""
    reports = []
    worker.run(interval_s=0, sender=LoggingSender(), clock=lambda: at or utcnow(), passes=1,
               on_pass=reports.append, listen=False)
    return reports[0].exports


def ask(client, status: int = 202, **body):
    response = client.post("/api/v1/exports", json={"kind": "incidents", "format": "csv"} | body)
    assert response.status_code == status, response.text
    return response.json()


def job(client, job_id: int) -> dict:
    response = client.get(f"/api/v1/exports/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def csv_rows(response) -> list[dict]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    text_ = response.content.decode("utf-8")
    assert text_.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text_[1:])))


def queued() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(ExportJob))


def test_a_community_supervisors_job_from_queued_to_done_with_its_progress(tree, cases, client_for, monkeypatch):
    cases["late"].contact_phone = "13812345678"
    db.session.commit()
    community = client_for(tree["community"])
    mine = {c.id for c in cases.values() if c.region_path.startswith(tree["K1"].path)}
    everything, late = {c.id for c in cases.values()} - {cases["elsewhere"].id}, cases["late"].id  # the pass
    response = community.post("/api/v1/exports", json={"kind": "incidents", "format": "csv"})
    assert response.status_code == 202, response.text
    asked = response.json()
    assert response.headers["Location"] == f"/api/v1/exports/{asked['id']}"
    assert (asked["state"], asked["rows_done"], asked["rows_total"], asked["percent"], asked["file"]) == (
        "queued", 0, None, None, None)
    not_ready = community.get(f"/api/v1/exports/{asked['id']}/file")
    assert (not_ready.status_code, not_ready.json()["code"]) == (409, "export.not_ready")

    # progress every two rows, looked at over HTTP while the run goes on
    monkeypatch.setattr(exports, "BATCH", 2)
    seen, real = [], export_jobs._reporting

    def watched(rows, progress):
        def looked(n):
            progress(n)
            got = job(community, asked["id"])
            seen.append((got["state"], got["rows_done"], got["rows_total"], got["percent"]))
        return real(rows, looked)

    monkeypatch.setattr(export_jobs, "_reporting", watched)
    assert one_pass().done == 1
    assert seen == [("running", 2, 5, 40), ("running", 4, 5, 80)]
    done = job(community, asked["id"])
    assert (done["state"], done["rows_done"], done["rows_total"], done["percent"]) == ("done", 5, 5, 100)
    assert done["file"] == f"/api/v1/exports/{asked['id']}/file" and done["size_bytes"] > 0
    assert done["expires_at"] > done["finished_at"]
    got = csv_rows(community.get(done["file"]))
    assert {int(r["编号"]) for r in got} == mine == everything
    assert next(r for r in got if int(r["编号"]) == late)["联系电话"] == "138****5678"
    inbox = community.get("/api/v1/me/notifications").json()["items"]
    told = [(n["title"], n["body"]) for n in inbox if n["kind"] == "export_done"]  # the sweep told of others
    assert told == [("导出完成", "事件导出 CSV：5行")]
    assert [j["id"] for j in community.get("/api/v1/exports").json()["items"]] == [asked["id"]]


def test_a_job_runs_with_its_owners_scope_as_it_is_when_it_runs(tree, cases, client_for):
    community = client_for(tree["community"])
    asked = ask(community, filters={"status_group": "open"}, lang="en")
    moved = db.session.get(User, tree["community"].id)
    moved.region_id = tree["K2"].id  # moved to the other district's community before the job ran
    db.session.commit()
    elsewhere = cases["elsewhere"].id
    one_pass()
    got = csv_rows(community.get(f"/api/v1/exports/{asked['id']}/file"))
    assert [(int(r["id"]), r["status"]) for r in got] == [(elsewhere, "Accepted")]


def test_an_excel_job_goes_past_the_synchronous_limit(tree, cases, client_for, monkeypatch):
    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 1)
    street = client_for(tree["street"])
    assert street.get("/api/v1/incidents/export.xlsx").json()["code"] == "export.too_large"
    asked = ask(street, format="xlsx", filters={"region_id": tree["G2"].id})
    in_g2 = {cases[k].id for k in ("soon", "closed", "police")}
    one_pass()
    response = street.get(f"/api/v1/exports/{asked['id']}/file")
    assert response.status_code == 200 and "spreadsheetml" in response.headers["Content-Type"]
    assert response.headers["Content-Disposition"] == f'attachment; filename="export-{asked["id"]}.xlsx"'
    header, *rows = load_workbook(io.BytesIO(response.content), read_only=True).active.iter_rows(values_only=True)
    assert header[0] == "编号"
    assert {row[0] for row in rows} == in_g2


def test_only_the_owner_sees_a_job(tree, cases, client_for):
    community, street, admin = (client_for(tree[name]) for name in ("community", "street", "admin"))
    asked = ask(community)
    one_pass()
    for client in (street, admin):
        for path in (f"/api/v1/exports/{asked['id']}", f"/api/v1/exports/{asked['id']}/file"):
            refused = client.get(path)
            assert (refused.status_code, refused.json()["code"]) == (404, "export.not_found")
        assert client.get("/api/v1/exports").json()["items"] == []
    assert community.get("/api/v1/exports/999999").json()["code"] == "export.not_found"


@pytest.mark.parametrize("body, status, where", [
    ({"filters": {"light": ["blue"], "lang": "zh"}}, 422, "filters"),
    ({"filters": {"reported_from": "yesterday"}}, 422, "filters"),
    ({"filters": {"bbox": "1,2,3"}}, 422, "filters"),
    ({"format": "pdf"}, 422, "format"),
    ({"kind": "residents"}, 422, "kind"),
    ({"lang": "fr"}, 422, "lang"),
    ({"filters": ["status_group", "open"]}, 422, "filters"),
    ({"kind": "metrics", "filters": {"from": "2026-01-01", "to": "2026-04-01"}}, 422, "filters"),
    ({"kind": "metrics", "filters": {"region_id": "7", "from": "2026-04-01", "to": "2026-01-01"}}, 422, "filters"),
    ({"kind": "metrics", "filters": {"region_id": 1, "from": "2026-01-01", "to": "2026-04-01",
                                     "weights": "bribes:1"}}, 422, "filters"),
])
def test_bad_filters_are_refused_and_nothing_is_queued(tree, client_for, body, status, where):
    response = client_for(tree["street"]).post("/api/v1/exports", json={"kind": "incidents", "format": "csv"} | body)
    assert response.status_code == status and response.json()["code"] == "request.invalid", response.text
    assert where in response.json()["errors"]
    assert queued() == 0


def test_metrics_outside_ones_scope_or_rights_are_refused_before_queueing(tree, client_for):
    q1 = {"from": "2026-01-01", "to": "2026-04-01"}
    hidden = client_for(tree["street"]).post("/api/v1/exports", json={
        "kind": "metrics", "format": "csv", "filters": q1 | {"region_id": tree["D2"].id}})
    assert (hidden.status_code, hidden.json()["code"]) == (404, "region.not_found")
    refused = client_for(tree["grid_worker"]).post("/api/v1/exports", json={
        "kind": "metrics", "format": "xlsx", "filters": q1 | {"region_id": tree["K1"].id}})
    assert (refused.status_code, refused.json()["code"]) == (403, "auth.forbidden")
    assert queued() == 0


def test_a_person_has_a_few_jobs_under_way_at_most(tree, client_for, app, monkeypatch):
    monkeypatch.setitem(app.config, "EXPORT_JOBS_ACTIVE_PER_USER", 2)
    street = client_for(tree["street"])
    ask(street), ask(street)
    too_many = street.post("/api/v1/exports", json={"kind": "incidents", "format": "csv"})
    assert (too_many.status_code, too_many.json()["code"]) == (429, "export.too_many_jobs")
    assert queued() == 2


def test_a_failed_job_says_why(tree, cases, client_for, app, monkeypatch):
    street, street_id = client_for(tree["street"]), tree["street"].id
    too_big = ask(street)
    monkeypatch.setitem(app.config, "EXPORT_JOB_MAX_ROWS", 2)
    report = one_pass()
    assert (report.failed, report.errors) == (1, [f"export {too_big['id']}: export.too_large"])
    got = job(street, too_big["id"])
    assert (got["state"], got["error_code"], got["rows_done"], got["file"]) == ("failed", "export.too_large", 0, None)
    response = street.get(f"/api/v1/exports/{too_big['id']}/file")
    assert (response.status_code, response.json()["code"]) == (409, "export.failed")
    monkeypatch.setitem(app.config, "EXPORT_JOB_MAX_ROWS", 1000)
    gone = ask(street)
    leaver = db.session.get(User, street_id)
    leaver.is_active = False
    db.session.commit()
    one_pass()
    db.session.rollback()
    assert db.session.get(ExportJob, gone["id"]).error_code == "export.owner_inactive"


def test_a_file_is_deleted_after_the_retention(tree, cases, client_for):
    street = client_for(tree["street"])
    asked = ask(street)
    one_pass()
    key = db.session.get(ExportJob, asked["id"]).storage_key
    assert blob_store().exists(key)
    assert one_pass(utcnow() + timedelta(hours=23)).expired == 0
    assert one_pass(utcnow() + timedelta(hours=25)).expired == 1
    assert not blob_store().exists(key)
    assert job(street, asked["id"])["state"] == "expired"
    response = street.get(f"/api/v1/exports/{asked['id']}/file")
    assert (response.status_code, response.json()["code"]) == (410, "export.expired")


def test_two_workers_never_run_the_same_job(tree, cases, client_for, app):
    street = client_for(tree["street"])
    first = ask(street)
    # another worker holds the job's row (its claim not yet committed): passed over
    with db.engine.connect() as other:
        other.execute(text("SELECT id FROM export_jobs WHERE id = :id FOR UPDATE"), {"id": first["id"]})
        assert export_jobs.claim(utcnow()) is None
        other.rollback()
    run = export_jobs.claim(utcnow())
    assert run.job_id == first["id"] and run.attempt == 1
    assert export_jobs.claim(utcnow()) is None  # running: nobody else's
    db.session.execute(text("UPDATE export_jobs SET state = 'queued', attempt = 0"))  # as it was
    db.session.commit()
    ask(street), ask(street)  # three queued now, two workers side by side, three passes each

    def passes():
        with app.app_context():
            for _ in range(3):
                export_jobs.work()

    threads = [threading.Thread(target=passes) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    db.session.rollback()
    assert [(j.state, j.attempt) for j in db.session.scalars(select(ExportJob).order_by(ExportJob.id))] == [
        ("done", 1)] * 3
    inbox = street.get("/api/v1/me/notifications").json()["items"]
    assert len([n for n in inbox if n["kind"] == "export_done"]) == 3


def test_a_silent_run_is_run_again_and_given_up_after_its_attempts(tree, cases, client_for, app, monkeypatch):
    street = client_for(tree["street"])
    asked = ask(street)
    started = utcnow()
    export_jobs.claim(started)  # a worker took it and died
    assert one_pass(started + timedelta(minutes=9)).requeued == 0  # quiet, not yet silent
    report = one_pass(started + timedelta(minutes=11))
    assert (report.requeued, report.done) == (1, 1)  # requeued and run again at once
    db.session.rollback()
    assert (db.session.get(ExportJob, asked["id"]).state, db.session.get(ExportJob, asked["id"]).attempt) == (
        "done", 2)
    monkeypatch.setitem(app.config, "EXPORT_JOB_MAX_ATTEMPTS", 1)
    dead = ask(street)
    export_jobs.claim(started)
    assert one_pass(started + timedelta(minutes=11)).failed == 1
    assert job(street, dead["id"])["error_code"] == "export.worker_lost"


def test_a_run_whose_job_was_taken_from_it_stops(tree, cases, client_for, monkeypatch):
    street = client_for(tree["street"])
    asked = ask(street)
    monkeypatch.setattr(exports, "BATCH", 2)
    real = export_jobs._reporting

    def requeued_meanwhile(rows, progress):  # another worker took the run for dead
        with db.engine.begin() as other:
            other.execute(text("UPDATE export_jobs SET state = 'queued'"))
        return real(rows, progress)

    monkeypatch.setattr(export_jobs, "_reporting", requeued_meanwhile)
    report = one_pass()
    assert (report.lost, report.done, report.failed) == (1, 0, 0)
    got = job(street, asked["id"])
    assert (got["state"], got["file"]) == ("queued", None)  # for the next worker, no file left behind


def test_a_requeued_job_shows_no_progress_of_the_lost_run(tree, cases, client_for):
    street = client_for(tree["street"])
    asked = ask(street)
    started = utcnow()
    export_jobs.claim(started)  # a worker took it, wrote 3 of 5 rows and died
    db.session.execute(text("UPDATE export_jobs SET rows_done = 3, rows_total = 5 WHERE id = :id"),
                       {"id": asked["id"]})
    db.session.commit()
    assert job(street, asked["id"])["percent"] == 60
    export_jobs._recover(started + timedelta(minutes=11), export_jobs.ExportReport())
    got = job(street, asked["id"])
    assert (got["state"], got["rows_done"], got["rows_total"], got["percent"]) == ("queued", 0, None, None)

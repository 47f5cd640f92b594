"""Incident exports (CSV): streamed, scoped as the list, the list's filters, contacts masked,
formulas defused, headers and labels in Chinese or English."""
from __future__ import annotations

import csv
import io

from server.extensions import db


def rows(response) -> list[dict]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")  # Excel reads UTF-8 by it
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_a_community_exports_its_own_cases_masked(tree, cases, client_for):
    late = cases["late"]
    late.contact_name, late.contact_phone = "张三丰", "13812345678"
    late.description = "=HYPERLINK(\"http://evil.example\")"
    db.session.commit()
    community = client_for(tree["community"])
    got = rows(community.get("/api/v1/incidents/export.csv"))
    visible = {c.id for c in cases.values() if c.region_path.startswith(tree["K1"].path)}
    assert {int(r["编号"]) for r in got} == visible  # the closed one too: the list's default is all
    row = next(r for r in got if int(r["编号"]) == late.id)
    assert (row["联系人"], row["联系电话"], row["状态"], row["层级"], row["信号灯"]) == (
        "张**", "138****5678", "已立案", "网格", "超时")
    assert row["描述"].startswith("'=")  # a spreadsheet shows it, never runs it
    english = rows(community.get("/api/v1/incidents/export.csv", params={"lang": "en", "status_group": "open",
                                                                          "light": "red"}))
    assert [(int(r["id"]), r["light"], r["status"]) for r in english] == [(late.id, "Overdue", "Accepted")]


def test_scope_and_bad_filters(tree, cases, client_for):
    department = client_for(tree["department"])
    assert [int(r["编号"]) for r in rows(department.get("/api/v1/incidents/export.csv"))] == [cases["police"].id]
    bad = client_for(tree["community"]).get("/api/v1/incidents/export.csv", params={"lang": "fr", "light": "blue"})
    assert bad.status_code == 422 and {"lang", "light"} <= set(bad.json()["errors"])


def test_the_same_as_an_excel_workbook(tree, cases, client_for, monkeypatch):
    from openpyxl import load_workbook

    from server.services import exports

    late = cases["late"]
    late.contact_phone = "13812345678"
    db.session.commit()
    community = client_for(tree["community"])
    response = community.get("/api/v1/incidents/export.xlsx", params={"status_group": "open"})
    assert response.status_code == 200 and "spreadsheetml" in response.headers["Content-Type"]
    sheet = load_workbook(io.BytesIO(response.content), read_only=True).active
    header, *rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert header[:3] == ["编号", "上报时间", "分类代码"]
    open_ = {c.id for c in cases.values() if c.region_path.startswith(tree["K1"].path) and c.status != "closed"}
    assert {row[0] for row in rows} == open_  # ids as numbers
    assert next(row for row in rows if row[0] == late.id)[17] == "138****5678"
    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 1)
    too_many = community.get("/api/v1/incidents/export.xlsx")
    assert too_many.status_code == 400 and too_many.json()["code"] == "export.too_large"


FORMULAS = ("=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", "＝1+1")


def test_no_cell_of_any_column_is_run_as_a_formula(tree, cases, client_for):
    """Every text cell, whatever column it is in and whoever typed it: a cell code from an
    imported file, a category name, a caller's masked name, a department's code."""
    from openpyxl import load_workbook

    from tests.builders import make_department, make_region
    from tests.incident_builders import make_incident

    admin = client_for(tree["admin"])
    category = cases["late"].category
    category.name = category.name_en = "=2+3"
    cell = make_region("@SUM(A1)", "grid", (-118.36, 34.04, -118.355, 34.045), tree["K1"], name="+cmd|' /C calc'!A0")
    make_incident(category, cell, None, contact_name="=HYPERLINK(1)", contact_phone="+8613812345678",
                  address="-2+3", description="\t=1+1")
    make_department("-1+1", tree["K1"], name="=部门")
    db.session.commit()
    dangerous = tuple(f[0] for f in FORMULAS)
    for lang in ("zh", "en"):
        for row in csv.reader(io.StringIO(rows_text(admin.get("/api/v1/incidents/export.csv", params={"lang": lang})))):
            assert not any(value.startswith(dangerous) for value in row), row
        book = load_workbook(io.BytesIO(admin.get("/api/v1/incidents/export.xlsx", params={"lang": lang}).content))
        for row in book.active.iter_rows():
            for value in row:
                assert value.data_type != "f" and not str(value.value or "").startswith(dangerous), value.value
    period = {"from": "2026-01-01", "to": "2026-02-01"}
    for path in (f"/api/v1/stats/regions/{tree['C'].id}/export.csv",
                 f"/api/v1/stats/regions/{tree['C'].id}/departments/export.csv"):
        got = admin.get(path, params=period)
        assert got.status_code == 200
        for row in csv.reader(io.StringIO(got.content.decode("utf-8")[1:])):
            assert not any(value.startswith(dangerous) for value in row), row


def rows_text(response) -> str:
    assert response.status_code == 200, response.text
    return response.content.decode("utf-8")[1:]

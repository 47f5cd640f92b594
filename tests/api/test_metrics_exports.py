"""Metrics exports (docs/STATS.md "Exports"): a region's figures, its children's, its
departments' and workers' as CSV and as a workbook, checked cell by cell against what the
stats endpoints answer for the same query (the hand-built quarter of test_stats)."""
from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from server.extensions import db
from tests.api.test_stats import Q1, cases  # noqa: F401 — the hand-built histories

pytestmark = pytest.mark.usefixtures("cases")


def table(response) -> list[dict]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def number(cell):
    """A CSV cell as the JSON would have it: empty is null."""
    return None if cell in ("", None) else float(cell)


def json_of(client, path: str, **params) -> dict:
    response = client.get(path, params=Q1 | params)
    assert response.status_code == 200, response.text
    return response.json()


def expected(figures: dict, before: dict | None, year_before: dict | None) -> dict:
    """The export's numbers of one group, by English header, from the stats answer."""
    rates = figures["rates"]
    row = dict(figures["counts"])
    row |= {f"{k}_rate_pct": None if v is None else round(100 * v, 2) for k, v in rates.items()}
    row |= {f"{step}_hours_{part}": value for step, h in figures["hours"].items() for part, value in h.items()}
    row["satisfaction_mean"] = figures["satisfaction_mean"]
    for suffix, other in (("previous", before), ("year", year_before)):
        for k, v in rates.items():
            old = other["rates"][k] if other else None
            row[f"{k}_change_{suffix}_pp"] = None if v is None or old is None else round(100 * (v - old), 2)
    return row


def assert_row(got: dict, want: dict) -> None:
    for key, value in want.items():
        assert number(got[key]) == pytest.approx(value), key


def test_the_citys_figures_as_csv_are_the_stats_answers(tree, client_for):
    city = client_for(tree["city"])
    path = f"/api/v1/stats/regions/{tree['C'].id}"
    now = json_of(city, path)
    before = json_of(city, path, **{"from": now["previous"]["period"]["from"], "to": now["previous"]["period"]["to"]})
    year = json_of(city, path, **{"from": now["year_before"]["period"]["from"],
                                  "to": now["year_before"]["period"]["to"]})
    rows = table(city.get(f"{path}/export.csv", params=Q1 | {"lang": "en"}))
    assert [(r["region_code"], r["level"], r["rank"]) for r in rows] == [
        (tree["C"].code, "City", ""), *[(c["region"]["code"], "District", str(c["rank"])) for c in now["children"]]]
    whole = expected(now["figures"], now["previous"]["figures"], now["year_before"]["figures"])
    assert_row(rows[0], whole | {"score": now["figures"]["score"]})
    # the region's changes are the answer's own
    assert {k: number(rows[0][f"{k}_change_previous_pp"]) for k in now["previous"]["change_pp"]} == pytest.approx(
        now["previous"]["change_pp"])
    children_before = {c["region"]["id"]: c["figures"] for c in before["children"]}
    children_year = {c["region"]["id"]: c["figures"] for c in year["children"]}
    for row, child in zip(rows[1:], now["children"], strict=True):
        key = child["region"]["id"]
        assert_row(row, expected(child["figures"], children_before[key], children_year[key])
                   | {"score": child["score"], "rank": child["rank"]})
    assert number(rows[1]["closure_rate_pct"]) == 100.0  # D1: rates are percentages


def test_headers_in_chinese_and_weights_as_the_stats_take_them(tree, client_for):
    city = client_for(tree["city"])
    rows = table(city.get(f"/api/v1/stats/regions/{tree['C'].id}/export.csv", params=Q1 | {"weights": "local:1"}))
    assert list(rows[0])[:6] == ["地区代码", "地区", "层级", "排名", "综合得分", "上报数"]
    assert rows[0]["层级"] == "市" and rows[0]["结案率(%)"] == str(round(100 * 5 / 6, 2))
    assert {r["地区代码"]: r["综合得分"] for r in rows[1:]} == {tree["D1"].code: "100.0", tree["D2"].code: "0.0"}


def test_departments_and_workers_as_csv(tree, client_for):
    tree.department.name_en = "=cmd|' /C calc'!A0"  # a name someone typed: defused
    db.session.commit()
    city = client_for(tree["city"])
    path = f"/api/v1/stats/regions/{tree['C'].id}"
    (police,) = json_of(city, f"{path}/departments")["departments"]
    (row,) = table(city.get(f"{path}/departments/export.csv", params=Q1 | {"lang": "en"}))
    assert row["department"].startswith("'=") and row["department_code"] == police["department"]["code"]
    assert_row(row, {"tasks": police["tasks"], "acknowledged": police["acknowledged"], "done": police["done"],
                     "ack_on_time_pct": 100 * police["ack_on_time"], "ack_hours_mean": police["ack_hours"]["mean"],
                     "done_hours_p90": police["done_hours"]["p90"]})
    (worker,) = json_of(city, f"{path}/workers")["workers"]
    (row,) = table(city.get(f"{path}/workers/export.csv", params=Q1))
    assert row["网格员"] == worker["worker"]["display_name"]
    assert_row(row, {"上报数": worker["reports"], "有效上报数": worker["valid_reports"],
                     "有效上报率(%)": 100 * worker["valid_rate"], "任务数": worker["tasks"]})


def test_the_workbook_has_a_sheet_each_with_numbers_as_numbers(tree, client_for):
    city = client_for(tree["city"])
    path = f"/api/v1/stats/regions/{tree['C'].id}"
    response = city.get(f"{path}/export.xlsx", params=Q1)
    assert response.status_code == 200 and "spreadsheetml" in response.headers["Content-Type"]
    book = load_workbook(io.BytesIO(response.content), read_only=True)
    assert book.sheetnames == ["地区", "部门", "网格员"]
    regions = [list(r) for r in book["地区"].iter_rows(values_only=True)]
    now = json_of(city, path)
    head = regions[0]
    assert regions[1][head.index("上报数")] == now["figures"]["counts"]["reported"]
    assert regions[1][head.index("排名")] is None
    assert [r[head.index("排名")] for r in regions[2:]] == [c["rank"] for c in now["children"]]
    assert regions[2][head.index("综合得分")] == now["children"][0]["score"]
    departments = [list(r) for r in book["部门"].iter_rows(values_only=True)]
    assert departments[1][departments[0].index("任务数")] == 2
    workers = [list(r) for r in book["网格员"].iter_rows(values_only=True)]
    assert len(workers) == 2 and workers[1][0] == tree["grid_worker"].display_name


def test_scope_permission_and_bad_queries_as_the_stats(tree, client_for):
    street = client_for(tree["street"])
    assert len(table(street.get(f"/api/v1/stats/regions/{tree['S1'].id}/export.csv", params=Q1))) == 2  # S1, K1
    for suffix in ("export.csv", "export.xlsx", "departments/export.csv", "workers/export.csv"):
        hidden = street.get(f"/api/v1/stats/regions/{tree['D2'].id}/{suffix}", params=Q1)
        assert (hidden.status_code, hidden.json()["code"]) == (404, "region.not_found")
        refused = client_for(tree["grid_worker"]).get(f"/api/v1/stats/regions/{tree['K1'].id}/{suffix}", params=Q1)
        assert (refused.status_code, refused.json()["code"]) == (403, "auth.forbidden")
    bad = street.get(f"/api/v1/stats/regions/{tree['S1'].id}/export.csv", params=Q1 | {"lang": "fr",
                                                                                       "weights": "bribes:1"})
    assert bad.status_code == 422 and {"lang", "weights"} <= set(bad.json()["errors"])
    backwards = street.get(f"/api/v1/stats/regions/{tree['S1'].id}/workers/export.csv",
                           params={"from": "2026-04-01", "to": "2026-01-01"})
    assert backwards.status_code == 422 and "to" in backwards.json()["errors"]


def test_a_metrics_job_makes_the_files_the_endpoints_make(tree, client_for):
    from tests.api.test_export_jobs import one_pass

    city, region = client_for(tree["city"]), tree["C"].id
    asked = [city.post("/api/v1/exports", json={"kind": "metrics", "format": fmt, "lang": "en",
                                                  "filters": Q1 | {"region_id": region}}).json() for fmt in ("csv", "xlsx")]
    one_pass(), one_pass()
    done = [city.get(f"/api/v1/exports/{a['id']}").json() for a in asked]
    assert [(d["state"], d["rows_done"], d["rows_total"]) for d in done] == [("done", 3, 3), ("done", 5, 5)]
    synchronous = city.get(f"/api/v1/stats/regions/{region}/export.csv", params=Q1 | {"lang": "en"})
    assert table(city.get(done[0]["file"])) == table(synchronous)  # the city and its two districts
    book = load_workbook(io.BytesIO(city.get(done[1]["file"]).content), read_only=True)
    assert book.sheetnames == ["Regions", "Departments", "Workers"]  # 3 + 1 + 1 rows

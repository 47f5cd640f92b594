"""The quarterly risk report (docs/STATS.md): made over HTTP from the hand-built first quarter
of the evaluation tests, its PDF rendered to pictures and read back — the text and the
figures (the evaluation endpoint's own), Chinese set in a CJK font, and the map and charts
drawn in their colours."""
from __future__ import annotations

import ctypes
from urllib.parse import quote

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw
import pytest

from server.extensions import db
from server.models import Category
from server.reports import charts
from tests.api.test_stats import Q1, at, cases, history  # noqa: F401 (cases: the hand-built quarter)

REPORT = {"year": 2026, "quarter": 1}


@pytest.fixture
def hot_cell(tree, cases):  # noqa: F811
    """Two more fights reported in G1 in the quarter: five against two in the four quarters
    before (I and J), a hot cell under the report's test."""
    fight = db.session.scalars(db.select(Category).where(Category.code == "0701")).one()
    for day in (12, 14):
        history(fight, tree["G1"], at(2, day), [], actor_id=tree["street"].id, status="reported", due_at=None)
    return tree["G1"]


def report(client, region, **params):
    return client.get(f"/api/v1/reports/regions/{region.id}/quarterly", params=REPORT | params)


class Pdf:
    """A PDF's pages as text and as pictures."""

    def __init__(self, body: bytes, scale: float = 2.0):
        self.doc = pdfium.PdfDocument(body)
        self.scale = scale
        self.pages = [self.doc[n] for n in range(len(self.doc))]
        self.texts = [page.get_textpage() for page in self.pages]
        self.text = "\n".join(t.get_text_range() for t in self.texts)
        self.pictures = [np.asarray(page.render(scale=scale).to_pil().convert("RGB")).astype(int)
                         for page in self.pages]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for thing in self.texts + self.pages + [self.doc]:
            thing.close()

    def pixels_of(self, colour: str, tolerance: int = 6) -> int:
        """How many pixels of all pages are ``colour`` (#rrggbb)."""
        rgb = np.array([int(colour[n:n + 2], 16) for n in (1, 3, 5)])
        return int(sum(np.all(np.abs(p - rgb) <= tolerance, axis=-1).sum() for p in self.pictures))

    def first(self, words: str) -> tuple[int, int]:
        """(page, character index) of the first occurrence of ``words``."""
        for n, textpage in enumerate(self.texts):
            index = textpage.get_text_range().find(words)
            if index >= 0:
                return n, index
        raise AssertionError(f"{words!r} is not in the PDF")

    def font_of(self, page: int, index: int) -> str:
        textpage = self.texts[page].raw
        size = pdfium_raw.FPDFText_GetFontInfo(textpage, index, None, 0, None)
        name = ctypes.create_string_buffer(size)
        pdfium_raw.FPDFText_GetFontInfo(textpage, index, name, size, None)
        return name.value.decode()

    def ink_of(self, page: int, index: int) -> int:
        """Dark pixels inside a character's box on its page's picture."""
        left, bottom, right, top = self.texts[page].get_charbox(index)
        height = self.pages[page].get_height()
        s = self.scale
        box = self.pictures[page][int((height - top) * s):int((height - bottom) * s) + 1,
                                  int(left * s):int(right * s) + 1]
        return int((box.sum(axis=-1) < 3 * 128).sum())


def test_the_quarterly_report_as_pdf_reads_back_its_figures(tree, cases, hot_cell, client_for):  # noqa: F811
    city = client_for(tree["city"])
    response = report(city, tree["C"])
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/pdf"
    assert quote("风险研判报告-") in response.headers["Content-Disposition"]
    assert "2026Q1.pdf" in response.headers["Content-Disposition"]
    figures = city.get(f"/api/v1/stats/regions/{tree['C'].id}", params=Q1).json()

    quiet = report(city, tree["C"], quarter=2)  # no report in the quarter: no hot cell
    with Pdf(response.content) as pdf, Pdf(quiet.content) as without:
        _check(pdf, tree, cases, figures)
        assert pdf.pixels_of(charts.HOT) > without.pixels_of(charts.HOT) + 50  # the hot cell marked


def _check(pdf: Pdf, tree, cases, figures):  # noqa: F811
    text = pdf.text
    assert "风险研判报告" in text and tree["C"].name in text and "2026-01-01" in text
    # the key figures are the evaluation endpoint's
    rates = figures["figures"]["rates"]
    for name in ("closure", "on_time", "local", "mediation_success"):
        assert f"{100 * rates[name]:.1f}%" in text, name
    assert f"{figures['previous']['change_pp']['closure']:+.1f}" in text
    # the ranking: each district with its score
    for child in figures["children"]:
        assert child["region"]["name"] in text and f"{child['score']:.1f}" in text
    # the hot cell, the open case past its deadline (G), the escalations (C by the sweep, F by hand)
    assert tree["G1"].name in text
    assert str(cases["G"].id) in text and str(cases["C"].id) in text and str(cases["F"].id) in text
    assert "超时自动升级" in text and "人工上报" in text
    assert "矛盾纠纷" in text and f"{100 * rates['mediation_success']:.1f}%" in text

    # Chinese set in Noto Sans CJK, and drawn: ink inside the title's characters
    page, index = pdf.first("风险研判报告")
    assert pdfium_raw.FPDFText_GetUnicode(pdf.texts[page].raw, index) == ord("风")
    assert "NotoSansCJK" in pdf.font_of(page, index).replace("-", "").replace(" ", "")
    assert all(pdf.ink_of(page, index + n) > 20 for n in range(6))

    # the map: the districts filled by their score, the hot cell marked; the charts' bars
    assert pdf.pixels_of(charts.score_fill(figures["children"][0]["score"])) > 2000
    for colour in (charts.CURRENT, charts.PREVIOUS, charts.LEVEL, charts.MONTH):
        assert pdf.pixels_of(colour) > 200, colour


def test_the_report_as_html_in_english(tree, cases, client_for):  # noqa: F811
    response = report(client_for(tree["city"]), tree["D1"], format="html", lang="en")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    html = response.text
    assert "Quarterly risk report" in html and "<svg" in html and "Key figures" in html
    assert tree["S1"].name in html  # D1's street, ranked


def test_markup_in_a_name_and_odd_codes(tree, cases, client_for):  # noqa: F811
    """A name is text wherever it shows (the title, the tables, each page's foot) and a code
    becomes a file name that is one name, in plain ASCII and in UTF-8."""
    district = tree["D1"]
    district.name, district.code = 'A&B <区> "一"', "D1/../x"
    db.session.commit()
    response = report(client_for(tree["city"]), district)
    assert response.status_code == 200, response.text
    disposition = response.headers["Content-Disposition"]
    assert 'filename="______-D1_.._x-2026Q1.pdf"' in disposition  # 风险研判报告: six letters
    assert "filename*=UTF-8''" + quote("风险研判报告-D1_.._x-2026Q1.pdf", safe="") in disposition
    with Pdf(response.content) as pdf:
        assert pdf.text.count('A&B <区> "一" · 2026Q1') == len(pdf.pages)  # every page's foot
        assert "&amp;" not in pdf.text and "&#34;" not in pdf.text


def test_a_quarter_under_way_says_so(tree, client_for):
    from server.models._base import utcnow

    now = utcnow()
    city = client_for(tree["city"])
    current = report(city, tree["C"], format="html", year=now.year, quarter=(now.month - 1) // 3 + 1)
    assert current.status_code == 200 and "季度初至统计时点" in current.text
    assert "季度初至统计时点" not in report(city, tree["C"], format="html").text


def test_the_pdf_renderer_fetches_nothing():
    """Whatever a report's HTML names (a picture, a style sheet), the PDF renderer fetches
    nothing: a server on loopback sees no request."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from server.services.reports import to_pdf

    asked = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        body = to_pdf(f'<link rel="stylesheet" href="{url}/a.css"><p>报告</p><img src="{url}/b.png">')
    finally:
        server.shutdown()
        server.server_close()
    assert body.startswith(b"%PDF") and asked == []


def test_making_a_pdf_leaves_truncated_photos_refused():
    """WeasyPrint's import tells Pillow to load truncated images, for the whole process: the
    report puts the setting back, so a photo cut short is still refused after a PDF."""
    import io
    from zoneinfo import ZoneInfo

    from PIL import Image

    from server.imaging import ImageError, inspect
    from server.services.reports import to_pdf

    to_pdf("<p>报告</p>")
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), "red").save(buffer, format="JPEG")
    with pytest.raises(ImageError) as refused:
        inspect(buffer.getvalue()[:len(buffer.getvalue()) // 2], max_pixels=10**8, local_tz=ZoneInfo("UTC"))
    assert refused.value.code == "photo.corrupt"


def test_who_may_have_which_report(tree, cases, client_for):  # noqa: F811
    street = client_for(tree["street"])
    assert report(street, tree["S1"], format="html").status_code == 200
    assert report(street, tree["C"]).json()["code"] == "region.not_found"
    assert report(client_for(tree["grid_worker"]), tree["K1"]).json()["code"] == "auth.forbidden"
    cell = report(client_for(tree["city"]), tree["G1"])
    assert cell.status_code == 422 and cell.json()["code"] == "report.invalid_level"


@pytest.mark.parametrize("params, field", [
    ({"year": 2100, "quarter": 4}, "quarter"),  # not begun
    ({"quarter": 5}, "quarter"),
    ({"quarter": 0}, "quarter"),
    ({"year": 1999}, "year"),
    ({"year": "soon"}, "year"),
    ({"format": "docx"}, "format"),
    ({"lang": "fr"}, "lang"),
])
def test_bad_report_requests_are_422(tree, client_for, params, field):
    response = report(client_for(tree["city"]), tree["C"], **params)
    assert response.status_code == 422 and field in response.json()["errors"], response.text


def test_flask_reports_quarterly_writes_the_file(app, tree, cases, tmp_path):  # noqa: F811
    out = tmp_path / "q1.html"
    result = app.test_cli_runner().invoke(args=["reports", "quarterly", tree["C"].code, "--year", "2026",
                                                "--quarter", "1", "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output and "风险研判报告" in out.read_text()
    missing = app.test_cli_runner().invoke(args=["reports", "quarterly", "NO-SUCH", "--year", "2026",
                                                 "--quarter", "1"])
    assert missing.exit_code != 0 and "NO-SUCH" in missing.output

"""The quarterly report's HTML in a real browser: the page as the API gives it, opened from a
file (it needs nothing else), its map and three charts laid out at their size, Chinese in
Noto Sans CJK, and the pictures drawn in their colours (a screenshot, kept in
var/test-artifacts/)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from server.reports import charts
from tests.builders import build_tree, standard_categories
from tests.api.test_reports import hot_cell, report  # noqa: F401 (hot_cell: a fixture)
from tests.api.test_stats import cases  # noqa: F401 (the hand-built quarter)

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
HOT_MARKS = """
return [...document.querySelectorAll('svg circle')].filter(c => c.getAttribute('fill') === arguments[0])
    .map(c => { const box = c.getBoundingClientRect();
                return [Math.round(box.left + box.width / 2), Math.round(box.top + box.height / 2)]; });
"""
PICTURES = """
return [...document.querySelectorAll('svg')].map(s => {
    const box = s.getBoundingClientRect();
    return [s.getAttribute('aria-label'), Math.round(box.width), Math.round(box.height)];
});
"""


@pytest.fixture
def tree(db):
    tree = build_tree()
    standard_categories()
    return tree


def pixels_of(picture: np.ndarray, colour: str, tolerance: int = 6) -> int:
    rgb = np.array([int(colour[n:n + 2], 16) for n in (1, 3, 5)])
    return int(np.all(np.abs(picture - rgb) <= tolerance, axis=-1).sum())


def test_the_report_page_draws_its_map_and_charts(tree, cases, hot_cell, client_for, browser, tmp_path):  # noqa: F811
    city = client_for(tree["city"])
    response = report(city, tree["C"], format="html")
    assert response.status_code == 200, response.text
    page = tmp_path / "report.html"
    page.write_text(response.text, encoding="utf-8")
    browser.get(page.as_uri())

    pictures = browser.execute_script(PICTURES)
    assert len(pictures) == 4, pictures  # the map and three charts
    assert all(width >= 300 and height >= 60 for _, width, height in pictures), pictures
    assert "风险研判报告" in browser.title
    assert browser.execute_script("return document.fonts.check('16px \"Noto Sans CJK SC\"', '风险研判报告')")

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1000, height + 100)
    shot = browser.get_screenshot_as_png()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "report.png").write_bytes(shot)
    picture = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)
    figures = city.get(f"/api/v1/stats/regions/{tree['C'].id}",
                       params={"from": "2026-01-01", "to": "2026-04-01"}).json()
    assert pixels_of(picture, charts.score_fill(figures["children"][0]["score"])) > 2000  # a district filled
    (x, y), = browser.execute_script(HOT_MARKS, charts.HOT)  # the hot cell, drawn where it is marked
    assert pixels_of(picture[y - 1:y + 2, x - 1:x + 2], charts.HOT) == 9
    for colour in (charts.CURRENT, charts.PREVIOUS, charts.LEVEL, charts.MONTH):
        assert pixels_of(picture, colour) > 200, colour

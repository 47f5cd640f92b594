"""The map page in a real browser: Debian's Chromium, headless, driven by selenium through
Debian's chromedriver. It signs in, draws the cells and incidents it is allowed to see
(checked on the map's rendered features, not the DOM), filters, opens an incident, accepts
and dispatches one, speaks English; a screenshot is kept in var/test-artifacts/.

Chromium may resolve only 127.0.0.1: MapLibre and the page's data have to come from this
server, never from a CDN or an internet basemap.
"""
from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from PIL import Image
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from sqlalchemy import select

from server.models import Task
from tests.builders import PASSWORD, build_tree
from tests.images import jpeg
from tests.incident_builders import make_incident, map_cases, point_in

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
LABELS = """
const labels = [...document.querySelectorAll('.region-label')];
return labels.length ? labels.map(l => [l.dataset.regionId, l.textContent]) : null;
"""
SETTLED = """
const map = window.fengqiaoMap;
return Boolean(map && !map.isMoving() && map.loaded() && map.areTilesLoaded()
               && map.queryRenderedFeatures({layers: ['incidents']}).length);
"""
RENDERED = """
const map = window.fengqiaoMap;
if (!map || !map.loaded() || !map.areTilesLoaded()) return null;
return map.queryRenderedFeatures().map(f => [f.layer.id, f.id === undefined ? null : f.id,
                                             f.properties.light || null]);
"""


def wait_for(check, timeout: float = 30.0, what: str = "the page"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def text(driver, selector: str) -> str:
    """The text of the element now ("" while it is missing or being redrawn)."""
    try:
        return driver.find_element(By.CSS_SELECTOR, selector).text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def rendered(driver, layer: str) -> dict:
    """The rendered features of ``layer`` once the map has settled: id → light."""
    features = wait_for(lambda: driver.execute_script(RENDERED), what="the map's tiles")
    return {ident: light for name, ident, light in features if name == layer}


def test_a_community_supervisor_sees_filters_and_handles_the_cases_of_the_community(db, live_server, browser,
                                                                                    client_for):
    tree = build_tree()
    cases = map_cases(tree)
    fight = cases["late"].category
    new = make_incident(fight, tree["G1"], tree["grid_worker"], at=point_in(tree["G1"], 0.5, 0.7),
                        description="新上报：路灯不亮")  # reported: the supervisor accepts it from the map
    upload = client_for(tree["grid_worker"]).post(f"/api/v1/incidents/{new.id}/photos", data={"kind": "report"},
                                                  files={"file": ("p.jpg", jpeg(colour=(30, 160, 60)), "image/jpeg")})
    assert upload.status_code == 201, upload.text
    browser.get(f"{live_server}/map")
    browser.find_element(By.NAME, "username").send_keys(tree["community"].username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()

    cells = wait_for(lambda: rendered(browser, "regions"), what="the regions")
    in_scope = {tree[k].id for k in ("K1", "G1", "G2")}
    assert set(cells) <= in_scope and set(cells)  # the community's own regions, nothing else
    labels = wait_for(lambda: browser.execute_script(LABELS), what="the regions' names")
    assert {int(ident) for ident, _ in labels} <= set(cells)  # the names of regions drawn, with their open cases
    assert {name for _, name in labels} <= {f"{tree[k].name}{n}" for k, n in (("K1", 5), ("G1", 3), ("G2", 2))}

    centre = point_in(tree["K1"])
    browser.execute_script(f"window.fengqiaoMap.jumpTo({{center: [{centre.x}, {centre.y}], zoom: 13.5}})")
    time.sleep(0.5)
    seen = wait_for(lambda: rendered(browser, "incidents"), what="the incidents")
    mine = {cases[k].id: light for k, light in (("late", "red"), ("on_time", "green"), ("soon", "yellow"),
                                                 ("police", "green"))} | {new.id: "none"}
    assert seen == mine  # the open ones of the community, with their lights; not the other district's

    point = browser.execute_script(f"const p = window.fengqiaoMap.project([{point_in(tree['G1'], 0.5, 0.7).x}, "
                                   f"{point_in(tree['G1'], 0.5, 0.7).y}]); return [p.x, p.y];")
    canvas = browser.find_element(By.CSS_SELECTOR, "#map canvas")
    size = canvas.size
    ActionChains(browser).move_to_element_with_offset(canvas, point[0] - size["width"] / 2,
                                                      point[1] - size["height"] / 2).click().perform()
    wait_for(lambda: f"#{new.id}" in text(browser, "#detail"), what="the clicked incident")
    photo = wait_for(lambda: browser.execute_script(
        "const i = document.querySelector('#detail .photos img'); return i && i.complete && i.naturalWidth;"),
        what="the incident's photo")
    assert photo == 64  # the uploaded image itself, fetched with the token
    browser.find_element(By.CSS_SELECTOR, "#detail button[data-action=accept]").click()
    wait_for(lambda: "立案" in text(browser, "#detail ol"), what="the accept in the timeline")
    db.session.refresh(new)
    assert new.status == "accepted"  # through the same API
    worker = tree["grid_worker"]
    form = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#detail form.dispatch"), what="the dispatch form")
    offered = {o.get_attribute("value") for o in Select(form[0].find_element(By.NAME, "assignee")).options}
    # the street's police station too, above the community's scope: the server says whom the case may go to
    assert offered == {f"user:{tree['grid_worker'].id}", f"department:{tree.department.id}"}
    Select(form[0].find_element(By.NAME, "assignee")).select_by_value(f"user:{worker.id}")
    form[0].find_element(By.NAME, "note").send_keys("请今天处理")
    form[0].find_element(By.CSS_SELECTOR, "button[data-action=dispatch]").click()
    wait_for(lambda: "派遣" in text(browser, "#detail ol"), what="the dispatch")
    db.session.refresh(new)
    task = db.session.scalars(select(Task).where(Task.incident_id == new.id)).one()
    assert (new.status, task.assignee_id, task.instructions) == ("dispatched", worker.id, "请今天处理")

    browser.find_element(By.CSS_SELECTOR, "input[name=light][value=red]").click()
    wait_for(lambda: rendered(browser, "incidents") == {cases["late"].id: "red"}, what="the red filter")

    def open_overdue() -> bool:  # the list is redrawn when the data change: find it afresh
        try:
            browser.find_element(By.CSS_SELECTOR, f"#overdue li[data-id='{cases['late'].id}']").click()
            return True
        except (NoSuchElementException, StaleElementReferenceException):
            return False

    wait_for(open_overdue, what="the overdue list")
    detail = wait_for(lambda: (lambda shown: f"#{cases['late'].id} " in shown and shown)(text(browser, "#detail")),
                      what="the overdue incident's detail")
    assert cases["late"].description in detail and "超时" in detail  # its light, in Chinese

    # the detail flies the map to the case: the screenshot waits till it has landed and drawn
    wait_for(lambda: browser.execute_script(SETTLED), what="the map to settle after flying to the case")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = browser.get_screenshot_as_png()
    (ARTIFACTS / "map.png").write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    map_area = image.crop((0, 60, 1000, 700))
    colours = {colour for _, colour in map_area.getcolors(maxcolors=1 << 20)}
    assert any(r > 180 and g < 120 and b < 100 for r, g, b in colours)  # a red cell or point was drawn

    browser.find_element(By.ID, "lang").click()
    wait_for(lambda: "Overdue cases" in text(browser, "#side"), what="English")


def test_on_a_phone_sized_screen_the_list_goes_under_the_map(db, live_server, browser):
    tree = build_tree()
    cases = map_cases(tree)
    browser.set_window_size(390, 844)
    browser.get(f"{live_server}/map")
    browser.find_element(By.NAME, "username").send_keys(tree["street"].username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    assert wait_for(lambda: rendered(browser, "regions"), what="the regions")
    view = browser.find_element(By.ID, "map").rect
    side = browser.find_element(By.ID, "side").rect
    width = browser.execute_script("return document.documentElement.clientWidth")
    assert view["width"] >= width - 1 and side["width"] >= width - 1  # both full width
    assert side["y"] >= view["y"] + view["height"] - 1 and view["height"] > 200  # the list under the map
    wait_for(lambda: f"#{cases['late'].id}" in text(browser, "#overdue"), what="the overdue list")


@pytest.fixture
def tile_server():
    """A raster tile server on loopback standing in for a provider's: one PNG for every tile,
    the paths asked for recorded."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (120, 160, 220)).save(buffer, "PNG")
    png, asked = buffer.getvalue(), []

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png)))
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", asked
    server.shutdown()
    server.server_close()


def test_a_gcj02_basemap_is_drawn_under_the_regions_which_are_shifted_to_meet_it(db, app, live_server, browser,
                                                                                 tile_server, monkeypatch):
    import math

    from geo.crs import wgs84_to_gcj02

    base, asked = tile_server
    monkeypatch.setitem(app.config, "MAP_BASEMAP_URL", base + "/{z}/{x}/{y}.png")
    monkeypatch.setitem(app.config, "MAP_BASEMAP_CRS", "gcj02")
    tree = build_tree()
    browser.get(f"{live_server}/map")
    browser.find_element(By.NAME, "username").send_keys(tree["street"].username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    assert wait_for(lambda: rendered(browser, "regions"), what="the regions")
    wait_for(lambda: asked, what="the basemap's tiles")
    assert all(path.count("/") == 3 and path.endswith(".png") for path in asked)  # z/x/y from the template
    assert browser.execute_script("return window.fengqiaoMap.getLayer('basemap').type") == "raster"

    for lon, lat in ((113.2644, 23.1291), (116.3975, 39.9087), (121.4737, 31.2304), (-118.3, 34.0)):
        js = browser.execute_script(f"return window.fengqiaoWgs84ToGcj02([{lon}, {lat}]);")
        assert js == pytest.approx(list(wgs84_to_gcj02(lon, lat)), abs=1e-9)  # the page and geo/crs.py agree

    # in Guangzhou the tiles' layers are moved by the offset there, in pixels at zoom 0 doubling per zoom
    browser.execute_script("window.fengqiaoMap.jumpTo({center: [113.2644, 23.1291], zoom: 15});")
    centre = browser.execute_script("return window.fengqiaoMap.getCenter().toArray();")

    def merc(lon, lat):
        return math.radians(lon) * 6378137.0, math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * 6378137.0

    (x0, y0), (x1, y1) = merc(*centre), merc(*wgs84_to_gcj02(*centre))
    per_pixel = 2 * math.pi * 6378137.0 / 512
    expected = [(x1 - x0) / per_pixel, -(y1 - y0) / per_pixel]
    for layer, prop in (("regions", "fill-translate"), ("incidents", "circle-translate")):
        script = f"return window.fengqiaoMap.getPaintProperty('{layer}', '{prop}');"
        stops = wait_for(lambda script=script: browser.execute_script(script), what="the shift")
        assert stops[3] == 0 and stops[4][1] == pytest.approx(expected, rel=1e-6)
        assert stops[6][1] == pytest.approx([d * 2 ** 24 for d in expected], rel=1e-6)
    # some 600 m in Guangzhou, about 2.2 m a pixel at zoom 15 (512-pixel tiles): 250–300 pixels
    assert 250 < math.hypot(*expected) * 2 ** 15 < 300


def test_a_street_supervisor_sees_the_hotspots_of_the_street(db, live_server, browser):
    from datetime import timedelta

    from server.models._base import utcnow
    from tests.builders import standard_categories

    tree = build_tree()
    litter = standard_categories()["0101"]
    for n in range(4):  # four reports of litter in G2 this week, none before: hot (p ≈ 0.002)
        make_incident(litter, tree["G2"], tree["grid_worker"], at=point_in(tree["G2"], 0.2 + 0.15 * n, 0.3),
                      reported_at=utcnow() - timedelta(hours=n + 1))
    browser.get(f"{live_server}/map")
    browser.find_element(By.NAME, "username").send_keys(tree["street"].username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    hot = wait_for(lambda: rendered(browser, "hotspots"), what="the hotspots")
    assert len(hot) == 1 and browser.find_element(By.ID, "hotspots-toggle").is_displayed()
    browser.find_element(By.ID, "f-hotspots").click()  # hidden on demand
    wait_for(lambda: not rendered(browser, "hotspots"), what="the hotspots hidden")

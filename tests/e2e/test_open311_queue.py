"""The command centre's queue of citizens' requests sent with an address only (docs/OPEN311.md),
in a real browser (Debian's Chromium, headless): the operator reads the address, clicks the
spot on the map, confirms, and the case is opened in the grid cell there; the citizen's app
then finds its id by the token. Chromium may resolve only 127.0.0.1."""
from __future__ import annotations

import requests
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from sqlalchemy import select

from server.models import Incident
from tests.builders import PASSWORD, build_tree, standard_categories
from tests.e2e.test_map_page import text, wait_for
from tests.incident_builders import point_in


def test_the_command_centre_places_a_citizens_request_on_the_map(db, live_server, browser, client_for):
    tree = build_tree()
    standard_categories()
    key = client_for(tree["admin"]).post("/api/v1/open311/clients", json={"name": "随手拍"}).json()["api_key"]
    posted = requests.post(f"{live_server}/open311/v2/requests.json", timeout=30, data={
        "api_key": key, "service_code": "0101", "address_string": "解放路 88 号东侧", "description": "垃圾堆了三天"})
    token = posted.json()[0]["token"]

    browser.get(f"{live_server}/map")
    browser.find_element(By.NAME, "username").send_keys(tree["city"].username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_for(lambda: "解放路 88 号东侧" in text(browser, "#unlocated-list"), what="the queue")
    assert "待定位市民上报" in text(browser, "#unlocated") and "垃圾堆了三天" in text(browser, "#unlocated-list")
    wait_for(lambda: browser.execute_script("return Boolean(window.fengqiaoMap && window.fengqiaoMap.loaded())"),
             what="the map")
    browser.find_element(By.CSS_SELECTOR, "#unlocated-list button.place").click()
    assert "请在地图上点击事发位置" in text(browser, "#unlocated-hint")

    spot = point_in(tree["G1"], 0.4, 0.6)
    browser.execute_script(f"window.fengqiaoMap.jumpTo({{center: [{spot.x}, {spot.y}], zoom: 14}})")
    wait_for(lambda: browser.execute_script("return !window.fengqiaoMap.isMoving()"), what="the map to stop")
    x, y = browser.execute_script(f"const p = window.fengqiaoMap.project([{spot.x}, {spot.y}]); return [p.x, p.y];")
    canvas = browser.find_element(By.CSS_SELECTOR, "#map canvas")
    ActionChains(browser).move_to_element_with_offset(canvas, x - canvas.size["width"] / 2,
                                                      y - canvas.size["height"] / 2).click().perform()
    wait_for(lambda: browser.find_elements(By.ID, "place-here"), what="the confirmation")[0].click()

    incident = wait_for(lambda: db.session.scalars(select(Incident)).first() or db.session.rollback(),
                        what="the case")
    assert (incident.source, incident.region_id, incident.address) == ("open311", tree["G1"].id, "解放路 88 号东侧")
    assert abs(db.session.scalar(select(Incident.geom.ST_X())) - spot.x) < 1e-4  # where it was clicked
    wait_for(lambda: f"#{incident.id}" in text(browser, "#detail"), what="the new case's detail")
    wait_for(lambda: "暂无" in text(browser, "#unlocated-list"), what="the emptied queue")
    found = requests.get(f"{live_server}/open311/v2/tokens/{token}.json", timeout=30).json()
    assert found[0]["service_request_id"] == str(incident.id)

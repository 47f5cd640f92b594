"""The map page's campaign layer in a real browser (Debian's Chromium, headless): a street
office picks its inspection campaign (排查) and sees each cell coloured by its task's state
(checked on the map's rendered features), with a legend in Chinese and English and the counts.
Chromium may resolve only 127.0.0.1: everything comes from this server."""
from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.builders import PASSWORD, build_tree, standard_categories
from tests.campaign_builders import CAMPAIGNS, IN_G1, grow_street, launch, tasks_by_cell
from tests.e2e.test_map_page import text, wait_for
from tests.images import jpeg

CAMPAIGN_CELLS = """
const map = window.fengqiaoMap;
if (!map || !map.loaded() || !map.getLayer('campaign-cells')) return null;
const found = map.queryRenderedFeatures({layers: ['campaign-cells']});
return found.length ? found.map(f => [f.id, f.properties.state, f.properties.colour]) : null;
"""
LEGEND = """
const items = [...document.querySelectorAll('#campaign-legend li')];
return items.length ? items.map(li => [li.dataset.state, li.childNodes[1].textContent.trim(),
                                       li.querySelector('small').textContent,
                                       li.querySelector('b').textContent]) : null;
"""


def test_a_street_office_sees_its_campaign_cell_by_cell_with_a_legend(db, live_server, browser, client_for):
    tree = build_tree()
    standard_categories()
    extra = grow_street(tree)
    street, worker = client_for(tree["street"]), client_for(tree["grid_worker"])
    campaign = launch(street, tree["S1"], title="消防安全隐患排查")
    tasks = tasks_by_cell(street, campaign["id"])
    finding = worker.post("/api/v1/incidents", json={
        "category": "0503", "description": "消防通道堵塞", "location": {"type": "Point", "coordinates": IN_G1},
        "campaign_task_id": tasks[tree["G1"].code]["id"]})
    assert finding.status_code == 201, finding.text
    answered = client_for(extra["worker4"]).post(
        f"{CAMPAIGNS}/{campaign['id']}/tasks/{tasks[extra['G4'].code]['id']}/nothing-found",
        files={"photo": ("g4.jpg", jpeg(), "image/jpeg")})
    assert answered.status_code == 200, answered.text

    browser.get(f"{live_server}/map")
    browser.find_element(By.NAME, "username").send_keys(tree["street"].username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    chooser = wait_for(lambda: [e for e in browser.find_elements(By.ID, "f-campaign") if e.is_displayed()],
                       what="the campaign chooser")[0]
    Select(chooser).select_by_value(str(campaign["id"]))

    drawn = wait_for(lambda: browser.execute_script(CAMPAIGN_CELLS), what="the campaign's cells")
    states = {ident: (state, colour) for ident, state, colour in drawn}
    assert states == {tree["G1"].id: ("found", "#d73027"), tree["G2"].id: ("open", "#74add1"),
                      extra["G4"].id: ("nothing_found", "#1a9850"), extra["G5"].id: ("open", "#74add1")}

    legend = wait_for(lambda: browser.execute_script(LEGEND), what="the legend")
    assert legend == [["open", "待排查", "Open", "2"], ["found", "有发现", "Found", "1"],
                      ["nothing_found", "零报告", "Nothing found", "1"], ["overdue", "已超期", "Overdue", "0"]]
    assert "消防安全隐患排查" in text(browser, "#campaign") and "2/4 (50%)" in text(browser, "#campaign-progress")
    browser.find_element(By.ID, "lang").click()  # English first, Chinese beside it
    english = wait_for(lambda: (lambda rows: rows if rows and rows[0][1] == "Open" else None)(
        browser.execute_script(LEGEND)), what="the English legend")
    assert english[2] == ["nothing_found", "Nothing found", "零报告", "1"]
    assert "done 2/4" in text(browser, "#campaign-progress")

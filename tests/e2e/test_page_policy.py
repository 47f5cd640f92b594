"""The map page under its Content-Security-Policy (OWASP API8), in Chromium: signed in on a
basemap from another host, a case opened with its photo, and the browser reports no
violation of the policy (a script, a style, a worker, an image or a fetch refused)."""
from __future__ import annotations

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By

from tests.builders import PASSWORD, build_tree
from tests.e2e.test_map_page import rendered, tile_server, wait_for  # noqa: F401  (tile_server: a fixture)
from tests.images import jpeg
from tests.incident_builders import map_cases

REPORT_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def test_the_map_page_works_within_its_policy(db, app, live_server, browser, client_for, tile_server,  # noqa: F811
                                              monkeypatch):
    base, asked = tile_server
    monkeypatch.setitem(app.config, "MAP_BASEMAP_URL", base + "/{z}/{x}/{y}.png")
    tree = build_tree()
    late = map_cases(tree)["late"]
    upload = client_for(tree["grid_worker"]).post(f"/api/v1/incidents/{late.id}/photos", data={"kind": "report"},
                                                  files={"file": ("p.jpg", jpeg(), "image/jpeg")})
    assert upload.status_code == 201
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": REPORT_VIOLATIONS})
    browser.get(f"{live_server}/map")
    browser.find_element(By.NAME, "username").send_keys(tree["community"].username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    assert wait_for(lambda: rendered(browser, "regions"), what="the regions")
    wait_for(lambda: asked, what="the basemap's tiles")

    def open_overdue() -> bool:
        try:
            browser.find_element(By.CSS_SELECTOR, f"#overdue li[data-id='{late.id}']").click()
            return True
        except (NoSuchElementException, StaleElementReferenceException):
            return False

    wait_for(open_overdue, what="the overdue list")
    assert wait_for(lambda: browser.execute_script(
        "const i = document.querySelector('#detail .photos img'); return i && i.complete && i.naturalWidth;"),
        what="the case's photo") == 64
    assert browser.execute_script("return window.cspViolations") == []
    policy = browser.execute_script("return fetch('/map').then(r => r.headers.get('Content-Security-Policy'))")
    assert "script-src 'self';" in policy and base in policy

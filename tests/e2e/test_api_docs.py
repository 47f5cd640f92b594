"""The interactive API documentation in a real browser (Debian's Chromium, headless).

Chromium may resolve only 127.0.0.1: Swagger UI has to come from our own static files,
never from a CDN, or the page stays blank and the test fails.
"""
import re
import subprocess
import tempfile

import requests

CHROMIUM = "/usr/bin/chromium"


def render(url: str) -> str:
    """The DOM after the page's scripts ran (virtual time lets them finish)."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
             "--virtual-time-budget=10000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_swagger_ui_lists_every_operation_of_the_spec_from_local_assets(live_server, db):
    spec = requests.get(live_server + "/api/v1/openapi.json", timeout=30).json()
    dom = render(live_server + "/api/v1/docs")
    shown = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert shown == set(spec["paths"])
    assert "Fengqiao grid management API" in dom

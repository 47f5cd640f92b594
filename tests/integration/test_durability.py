"""Durability, as a script (docs/OPERATIONS.md, "Durability"): scripts/durability.py on a
short load, with its own cluster, web server, worker and fake FCM (never the test
database's), every fault on; it must pass every check."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reports_pushes_and_escalations_survive_sigkills_of_the_database_web_server_and_worker(tmp_path):
    verdict = tmp_path / "verdict.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "durability.py"), "--duration", "30", "--stage-seconds", "5",
         "--rate", "10", "--clients", "3", "--lease-seconds", "10", "--pg-port", "54361", "--progress-every", "10",
         "--json", str(verdict)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    output = run.stdout[-12000:] + run.stderr[-4000:]
    assert run.returncode == 0, output
    assert "Durability verdict: PASS" in run.stdout, output
    result = json.loads(verdict.read_text())
    assert result["ok"] and all(check["ok"] for check in result["checks"])
    figures = result["figures"]
    assert len(figures["faults"]) == 4 and not any("skipped" in fault for fault in figures["faults"]), figures
    assert figures["acknowledged"] > 100 and figures["incidents"] == figures["keys"]
    assert figures["failed_tries"], "the faults cost the clients nothing: they did not happen"
    assert figures["escalations"] > 0 and figures["supervised"] > 0 and figures["reminders"] > 0
    assert figures["pushes"] > 0 and figures["fcm_distinct"] == figures["pushes"]

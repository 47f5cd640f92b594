"""``flask worker`` for the load test: ``python -m bench.loadworker QUIET_INSTANT [flask worker options]``.

The real command (``server/cli/worker.py``: ``sender_from_config()`` with
``FENGQIAO_FCM_CREDENTIALS``, the loop of ``server.worker.run``, LISTEN for new pushes), in a
process of its own, with three changes the load test needs:

- firebase-admin is pointed at the fake FCM whose service-account file is in
  ``FENGQIAO_FCM_CREDENTIALS`` (FCM's URL; no regional-access-boundary lookup on the
  internet), as the tests and the escalation benchmark point it;
- the sweep is told it is ``QUIET_INSTANT`` (ISO 8601), an instant before the first deadline of
  the bench database's fixture of a million open cases: the fixture was built days ago, and at
  the real time tens of thousands of its cases are overdue — a backlog the sweep would escalate
  in one go during the run (the escalation benchmark measures that) and that would change the
  fixture the other benchmarks reuse. The cases the run reports are not due during a run of
  minutes at either instant (their first deadlines are hours away), so the sweep finds nothing
  either way and costs what an idle sweep costs: its four claiming statements a pass;
- the hourly early warning (hotspots) is left out: over a fixture of a million cases reported in
  three days every cell is hot, and its first pass would push thousands of alerts.

The dispatcher, the patrols' upkeep, the coverage and the export jobs run as they do in production,
on the real clock.
"""
from __future__ import annotations

import os
import sys
from datetime import datetime


def main(argv: list[str]) -> int:
    quiet = datetime.fromisoformat(argv[0])
    from firebase_admin import messaging
    from flask.cli import ScriptInfo
    from google.auth import credentials as google_credentials

    from server import create_app
    from server import worker as worker_loop

    fake_url = os.environ["FENGQIAO_LOAD_FAKE_FCM"]
    lookup = "_is_regional_access_boundary_lookup_required"
    boundary = google_credentials.CredentialsWithRegionalAccessBoundary
    if not hasattr(boundary, lookup) or not hasattr(messaging._MessagingService, "FCM_URL"):
        raise RuntimeError("firebase-admin or google-auth moved what the bench points at the fake FCM")
    messaging._MessagingService.FCM_URL = fake_url + "/v1/projects/{0}/messages:send"
    setattr(boundary, lookup, lambda self: False)

    real_sweep = worker_loop.sweep
    worker_loop.sweep = lambda now, **kw: real_sweep(quiet, **kw)
    worker_loop.raise_alerts = lambda now, rules: 0

    app = create_app()
    with app.app_context():
        app.cli.main(args=["worker", *argv[1:]], obj=ScriptInfo(create_app=lambda: app), standalone_mode=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

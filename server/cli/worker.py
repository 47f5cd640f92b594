"""``flask worker``: the background worker (escalation sweep)."""
from __future__ import annotations

import signal

import click
from flask import current_app

from server import worker


@click.command("worker")
@click.option("--once", is_flag=True, help="One pass, then exit (for cron or a check)")
@click.option("--interval", type=click.FloatRange(min=0.1), help="Seconds between passes "
              "(default: FENGQIAO_WORKER_INTERVAL_SECONDS)")
def worker_command(once, interval):
    """Sweep for due reminders, escalations, supervision and unacknowledged tasks.

    Safe to run as several processes side by side. Stops cleanly on SIGTERM or Ctrl-C
    after the pass under way.
    """
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    interval = interval or current_app.config["WORKER_INTERVAL_SECONDS"]

    def show(report):
        if report.done or report.failed or once:
            click.echo(f"reminded {report.reminded}, escalated {report.escalated}, supervised "
                       f"{report.supervised}, pushed again {report.repushed}, handed over {report.handed_over}"
                       + (f"; failed {len(report.failed)}: {', '.join(report.failed[:5])}" if report.failed else ""))

    if not once:
        click.echo(f"Worker sweeping every {interval:g} s (Ctrl-C to stop)", err=True)
    worker.run(interval_s=interval, passes=1 if once else None, on_pass=show, stop=lambda: bool(stopping))

"""``flask worker``: the background worker (escalation sweep, push dispatcher, early warning,
export jobs)."""
from __future__ import annotations

import signal

import click
from flask import current_app

from server import worker
from server.notifications import sender_from_config


@click.command("worker")
@click.option("--once", is_flag=True, help="One pass, then exit (for cron or a check)")
@click.option("--interval", type=click.FloatRange(min=0.1), help="Seconds between passes "
              "(default: FENGQIAO_WORKER_INTERVAL_SECONDS); a new push wakes the worker at once")
def worker_command(once, interval):
    """Sweep for due reminders, escalations, supervision, unacknowledged tasks and overdue
    inspection campaign tasks, send the pushes they queue (FCM with FENGQIAO_FCM_CREDENTIALS,
    else only logged), look for cells turning hot (early warning), compute the patrol coverage
    of past days whose points changed, end patrols left on, delete points past the retention
    and run queued export jobs.

    Safe to run as several processes side by side. Stops cleanly on SIGTERM or Ctrl-C
    after the pass under way.
    """
    try:
        sender = sender_from_config()
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"FENGQIAO_FCM_CREDENTIALS: cannot use "
                                   f"{current_app.config['FCM_CREDENTIALS']}: {exc}") from None
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    interval = interval or current_app.config["WORKER_INTERVAL_SECONDS"]
    if sender.name == "log":
        click.echo("Pushes are only logged: set FENGQIAO_FCM_CREDENTIALS to a Firebase service-account "
                   "file to send them through FCM.", err=True)

    def show(report):
        s, p, e = report.sweep, report.push, report.exports
        exported = e and (e.done or e.failed or e.requeued or e.expired or e.lost)
        patrols = report.patrols_abandoned or report.patrols_purged
        if s.done or s.failed or p.handled or p.errors or report.alerts or exported or patrols or once:
            click.echo(f"reminded {s.reminded}, escalated {s.escalated}, supervised {s.supervised}, "
                       f"pushed again {s.repushed}, handed over {s.handed_over}, campaign tasks overdue "
                       f"{s.campaign_overdue}, their reminders raised {s.campaign_escalated}; pushes sent {p.sent}, "
                       f"to retry {p.retried}, dead {p.dead}, failed {p.failed}, expired {p.expired}; "
                       f"hotspot warnings {report.alerts}; patrols left on ended {report.patrols_abandoned}, "
                       f"past retention deleted {report.patrols_purged}"
                       + (f"; exports done {e.done}, failed {e.failed}, requeued {e.requeued}, "
                          f"expired {e.expired}" if e else "")
                       + (f"; sweep failures {len(s.failed)}: {', '.join(s.failed[:5])}" if s.failed else ""))
        if report.coverage:
            click.echo(f"patrol coverage of {report.coverage[0]}: {report.coverage[1]} cells")

    if not once:
        click.echo(f"Worker: a pass every {interval:g} s or at once on a new push, sender {sender.name} "
                   "(Ctrl-C to stop)", err=True)
    worker.run(interval_s=interval, sender=sender, passes=1 if once else None, on_pass=show,
               stop=lambda: bool(stopping), listen=not once)

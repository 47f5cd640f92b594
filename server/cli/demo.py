"""``flask demo load``: the demo city with users for every role."""
from __future__ import annotations

import os
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from server.services.demo import load_demo

demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("load")
def load_command():
    """Load the demo city (Los Angeles as city > districts > streets > communities > grids)."""
    try:
        result = load_demo(say=lambda text: click.echo(text, err=True))
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    credentials = Path(current_app.config["DEMO_CREDENTIALS_FILE"])
    if not result["created"]:
        click.echo(f"Demo data already loaded (sign-in names and passwords: {credentials}).")
        return
    lines = [f"{username:<12} {role:<12} {password}" for username, role, password in result["users"]]
    lines.append(f"{'open311':<12} {'api_key':<12} {result['open311_key']}")
    credentials.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    click.echo(f"{result['incidents']} demo incidents reported and taken through the closed loop.")
    click.echo(f"worker1 patrolled for two hours ({result['patrol_points']} GPS fixes, a check-in); inspection "
               f"campaign {result['campaign_id']} (燃气与消防安全隐患排查) launched for the first street.")
    click.echo(f"Open311: citizen request {result['open311_request_id']} reported at a point; another with an "
               f"address only waits for the command centre (token {result['open311_token']}).")
    click.echo(f"Demo users (user name, role, password) and the Open311 client's api_key — also saved to "
               f"{credentials}:")
    click.echo("\n".join("  " + line for line in lines))

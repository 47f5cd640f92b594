"""``flask users create`` and ``flask users list``."""
import sys

import click
from flask.cli import AppGroup

from server.domain.people import ROLES
from server.domain.permissions import SYSTEM
from server.errors import DomainError
from server.services import users

users_cli = AppGroup("users", help="Create and list users.")

# The command line acts as an administrator of the whole territory.


def _read_password(from_stdin: bool) -> str:
    """A password from a hidden prompt (typed twice), or the first line of stdin.

    Never from an argument: arguments end up in shell history and ``ps``.
    """
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_cli.command("create")
@click.option("--username", required=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--region-code", required=True, help="Code of the scope region")
@click.option("--display-name", help="Defaults to the user name")
@click.option("--department-code", help="For the department role")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin")
def create(username, role, region_code, display_name, department_code, password_stdin):
    """Create a user; the password is prompted for (or read from stdin)."""
    data = {"username": username, "display_name": display_name or username, "role": role,
            "password": _read_password(password_stdin)}
    try:
        user = users.create_user_in_region(SYSTEM, data, region_code, department_code=department_code)
    except DomainError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    click.echo(f"created user {user.id} {user.username} ({user.role}) in {user.region.code}")


@users_cli.command("list")
def list_():
    """List every user: id, user name, role, scope region, active."""
    page = 1
    while True:
        result = users.list_users(SYSTEM, {"page": page, "page_size": 500})
        for user in result.items:
            state = "active" if user.is_active else "inactive"
            click.echo(f"{user.id}\t{user.username}\t{user.role}\t{user.region.code}\t{state}")
        if page * result.page_size >= result.total:
            break
        page += 1

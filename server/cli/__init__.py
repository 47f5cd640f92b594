"""Flask commands: ``flask regions …``, ``flask users …``, ``flask demo …``."""
from flask import Flask


def register_cli(app: Flask) -> None:
    from .demo import demo_cli
    from .regions import regions_cli
    from .users import users_cli

    for group in (regions_cli, users_cli, demo_cli):
        app.cli.add_command(group)

"""Flask commands: ``flask regions …``, ``flask users …``, ``flask categories …``, ``flask demo …``,
``flask incidents …``, ``flask calendar …``, ``flask reports …``, ``flask patrols …``, ``flask backup …``,
``flask worker``."""
from flask import Flask


def register_cli(app: Flask) -> None:
    from .backup import backup_cli
    from .calendar import calendar_cli
    from .categories import categories_cli
    from .demo import demo_cli
    from .incidents import incidents_cli
    from .patrols import patrols_cli
    from .regions import regions_cli
    from .reports import reports_cli
    from .users import users_cli
    from .worker import worker_command

    for group in (regions_cli, users_cli, categories_cli, demo_cli, incidents_cli, calendar_cli, reports_cli,
                  patrols_cli, backup_cli):
        app.cli.add_command(group)
    app.cli.add_command(worker_command)

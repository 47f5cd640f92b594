"""Flask commands: ``flask regions …``, ``flask users …``, ``flask demo …``."""
from flask import Flask


def register_cli(app: Flask) -> None:
    pass

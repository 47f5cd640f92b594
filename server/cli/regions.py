import click
from flask.cli import AppGroup

regions_cli = AppGroup("regions", help="regions commands")

"""HTTP resources: one flask-smorest Blueprint each. Views are thin: schema in, one
service call, schema out."""
from flask import Flask
from flask_smorest import Api

from server.auth import BEARER_SCHEME


def register_blueprints(app: Flask, api: Api) -> None:
    from server import web

    from . import health

    api.spec.components.security_scheme("bearerAuth", BEARER_SCHEME)
    app.register_blueprint(health.bp)
    app.register_blueprint(web.bp)
    for module in _resources():
        api.register_blueprint(module.blp, url_prefix="/api/v1" + (module.blp.url_prefix or ""))


def _resources():
    from . import auth, departments, me, regions, users

    return [auth, me, users, departments, regions]


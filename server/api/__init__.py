"""HTTP resources: one flask-smorest Blueprint each. Views are thin: schema in, one
service call, schema out."""
from flask import Flask
from flask_smorest import Api

from server.auth import BEARER_SCHEME
from server.errors import answer_errors_under

from .common import DateConverter, IdConverter, date_parameter_schema, id_parameter_schema


def register_blueprints(app: Flask, api: Api) -> None:
    from server import web

    from . import health, open311

    app.url_map.converters["id"] = IdConverter
    api.register_converter(IdConverter, id_parameter_schema)
    app.url_map.converters["date"] = DateConverter
    api.register_converter(DateConverter, date_parameter_schema)
    api.spec.components.security_scheme("bearerAuth", BEARER_SCHEME)
    app.register_blueprint(health.bp)
    app.register_blueprint(web.bp)
    app.register_blueprint(open311.bp)
    answer_errors_under("/open311/", open311.error_response)
    for module in _resources():
        api.register_blueprint(module.blp, url_prefix="/api/v1" + (module.blp.url_prefix or ""))


def _resources():
    from . import (auth, calendar, campaigns, categories, coverage, departments, escalation, exports, incidents, map,
                   me, open311_staff, patrol_places, patrols, regions, reports, stats, sync, users)

    return [auth, me, users, departments, regions, escalation, categories, incidents, sync, calendar, map, stats,
            reports, exports, patrols, patrol_places, coverage, campaigns, open311_staff]


"""The working-time calendar (工作日历): work days, holidays and make-up days (调休)."""
from schemas.calendar import CalendarDaySchema, CalendarDaySetSchema, CalendarDaysSchema, CalendarRangeArgsSchema
from server.auth import login_required
from server.services import calendar as service

from .common import Blueprint, errors

blp = Blueprint("calendar", __name__, url_prefix="/calendar",
                description="Work days for deadlines counted in working time")

DAY = "/days/<date:day>"


@blp.get("/days")
@login_required
@blp.arguments(CalendarRangeArgsSchema, location="query")
@blp.response(200, CalendarDaysSchema)
@errors(blp, 401, 422)
def list_days(actor, args):
    """Each day of a range (at most a year): a work day or not, and on whose word"""
    return {"items": service.list_days(actor, args["start"], args["end"])}


@blp.put(DAY)
@login_required
@blp.arguments(CalendarDaySetSchema)
@blp.response(200, CalendarDaySchema)
@errors(blp, 401, 403, 404, 422)
def set_day(actor, data, day):
    """Make a day a work day or a day off, whatever the schedule says (administrators)"""
    return service.set_day(actor, day, data["is_workday"], data["name"])


@blp.delete(DAY)
@login_required
@blp.response(200, CalendarDaySchema)
@errors(blp, 401, 403, 404)
def clear_day(actor, day):
    """Drop the administrators' entry for a day: the schedule decides again"""
    return service.clear_day(actor, day)

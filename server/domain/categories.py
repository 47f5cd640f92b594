"""Incident categories (事件/部件分类): kinds, typed extra attributes, escalation policy.

A category is a group (大类) or a leaf (小类) under a group; incidents take leaves. Pure
rules only: no Flask, no database.

**Attributes** are the typed extra fields of a report, as Open311 GeoReport v2 service
definitions describe them. A definition is a dict::

    {"code": "damage", "datatype": "singlevaluelist", "required": true,
     "label": "损坏情况", "label_en": "Damage", "description": "…", "order": 1,
     "values": [{"key": "missing", "name": "缺失", "name_en": "Missing"}, …]}

``values`` is required (non-empty) for the list datatypes and forbidden otherwise;
``min``/``max`` only for ``number``; ``max_length`` only for ``string`` (default 200)
and ``text`` (default 2000).

**Escalation policy** (the escalation engine reads it)::

    {"time_basis": "natural" | "working", "yellow_ratio": 0.75, "top_level": "district",
     "department_from": null | "street" | …,
     "levels": {"grid": {"ack_minutes": 60, "resolve_minutes": 1440}, …}}

Minutes are minutes of the time basis: wall-clock minutes for ``natural``, minutes of
working time (an 8-hour working day is 480) for ``working``. A category stores only what
differs from ``DEFAULT_POLICY``; ``effective_policy`` fills the rest. ``levels``, when
given, replaces the default levels as a whole (it is not merged level by level), so it
must cover every level from the category's start level up to ``top_level``.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone

from .incidents import PRIORITIES
from .people import DEPARTMENT_KINDS
from .territory import LEVELS, level_rank

KINDS = ("event", "facility", "dispute", "safety", "service")
KIND_LABELS = {
    "event": ("事件", "Event"),
    "facility": ("部件", "Public facility"),
    "dispute": ("矛盾纠纷", "Dispute"),
    "safety": ("安全隐患", "Safety hazard"),
    "service": ("民生服务", "Public service"),
}

# ---------------------------------------------------------------- attributes

# The Open311 GeoReport v2 datatypes.
ATTRIBUTE_DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
LIST_DATATYPES = ("singlevaluelist", "multivaluelist")
TEXT_DATATYPES = ("string", "text")
DEFAULT_MAX_LENGTH = {"string": 200, "text": 2000}
MAX_TEXT_LENGTH = 4000  # the longest max_length a definition may ask for (as an incident description)
MAX_ATTRIBUTES = 30
MAX_VALUES = 100

ATTRIBUTE_CODE = re.compile(r"[a-z][a-z0-9_]{0,39}")
VALUE_KEY = re.compile(r"[a-z0-9][a-z0-9_]{0,39}")
_DEFINITION_KEYS = frozenset({"code", "datatype", "required", "label", "label_en", "description", "order", "values",
                              "min", "max", "max_length"})
_VALUE_KEYS = frozenset({"key", "name", "name_en"})
_LABEL_MAX = 100
_DESCRIPTION_MAX = 500


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    """A finite JSON number a float can hold (a 400-digit integer cannot)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _is_label(value, max_length: int = _LABEL_MAX) -> bool:
    return isinstance(value, str) and 0 < len(value.strip()) and len(value) <= max_length


def _values_errors(where: str, values) -> list[str]:
    if not isinstance(values, list) or not values:
        return [f"{where}: values must be a non-empty list."]
    if len(values) > MAX_VALUES:
        return [f"{where}: at most {MAX_VALUES} values."]
    errors, keys = [], set()
    for i, value in enumerate(values):
        if not isinstance(value, dict):
            errors.append(f"{where}: values[{i}] must be an object.")
            continue
        if set(value) - _VALUE_KEYS:
            errors.append(f"{where}: values[{i}] has unknown fields {sorted(set(value) - _VALUE_KEYS)}.")
        key = value.get("key")
        if not isinstance(key, str) or not VALUE_KEY.fullmatch(key):
            errors.append(f"{where}: values[{i}].key must be 1-40 lower-case letters, digits or '_'.")
        elif key in keys:
            errors.append(f"{where}: value key {key!r} is repeated.")
        else:
            keys.add(key)
        for name in ("name", "name_en"):
            if not _is_label(value.get(name)):
                errors.append(f"{where}: values[{i}].{name} must be a non-blank string of at most {_LABEL_MAX}.")
    return errors


def _definition_errors(i: int, d) -> list[str]:
    if not isinstance(d, dict):
        return [f"attributes[{i}] must be an object."]
    code = d.get("code")
    where = f"attributes[{i}]" + (f" ({code})" if isinstance(code, str) else "")
    errors = []
    if set(d) - _DEFINITION_KEYS:
        errors.append(f"{where}: unknown fields {sorted(set(d) - _DEFINITION_KEYS)}.")
    if not isinstance(code, str) or not ATTRIBUTE_CODE.fullmatch(code):
        errors.append(f"{where}: code must be a lower-case letter then up to 39 letters, digits or '_'.")
    datatype = d.get("datatype")
    if datatype not in ATTRIBUTE_DATATYPES:
        errors.append(f"{where}: datatype must be one of {', '.join(ATTRIBUTE_DATATYPES)}.")
    if "required" in d and not isinstance(d["required"], bool):
        errors.append(f"{where}: required must be true or false.")
    for name in ("label", "label_en"):
        if not _is_label(d.get(name)):
            errors.append(f"{where}: {name} must be a non-blank string of at most {_LABEL_MAX}.")
    if d.get("description") is not None and not _is_label(d["description"], _DESCRIPTION_MAX):
        errors.append(f"{where}: description must be a non-blank string of at most {_DESCRIPTION_MAX}.")
    if "order" in d and not (_is_int(d["order"]) and 0 <= d["order"] <= 10_000):
        errors.append(f"{where}: order must be an integer from 0 to 10000.")
    if datatype in LIST_DATATYPES:
        errors.extend(_values_errors(where, d.get("values")))
    elif "values" in d:
        errors.append(f"{where}: values are only for singlevaluelist and multivaluelist.")
    for bound in ("min", "max"):
        if bound in d:
            if datatype != "number":
                errors.append(f"{where}: {bound} is only for number.")
            elif not _is_number(d[bound]):
                errors.append(f"{where}: {bound} must be a finite number.")
    if datatype == "number" and _is_number(d.get("min")) and _is_number(d.get("max")) and d["min"] > d["max"]:
        errors.append(f"{where}: min is greater than max.")
    if "max_length" in d:
        if datatype not in TEXT_DATATYPES:
            errors.append(f"{where}: max_length is only for string and text.")
        elif not (_is_int(d["max_length"]) and 1 <= d["max_length"] <= MAX_TEXT_LENGTH):
            errors.append(f"{where}: max_length must be an integer from 1 to {MAX_TEXT_LENGTH}.")
    return errors


def validate_attribute_definitions(defs) -> list[str]:
    """Everything wrong with a list of attribute definitions ([] when it is valid).

    Messages name the definition by index and code: ``attributes[2] (damage): …``.
    """
    if not isinstance(defs, list):
        return ["attributes must be a list."]
    if len(defs) > MAX_ATTRIBUTES:
        return [f"At most {MAX_ATTRIBUTES} attributes."]
    errors, seen = [], set()
    for i, d in enumerate(defs):
        errors.extend(_definition_errors(i, d))
        code = d.get("code") if isinstance(d, dict) else None
        if isinstance(code, str):
            if code in seen:
                errors.append(f"attributes[{i}] ({code}): the code is repeated.")
            seen.add(code)
    return errors


def normalize_attribute_definitions(defs: list[dict]) -> list[dict]:
    """Valid definitions with their defaults written out: ``required`` false, ``order``
    the position (from 1), ``max_length`` for string and text. Stored this way, so what
    a form shows is what ``clean_attribute_values`` applies."""
    result = []
    for position, d in enumerate(defs, start=1):
        item = {"code": d["code"], "datatype": d["datatype"], "required": d.get("required", False),
                "label": d["label"].strip(), "label_en": d["label_en"].strip()}
        if d.get("description") is not None:
            item["description"] = d["description"].strip()
        item["order"] = d.get("order", position)
        if d["datatype"] in LIST_DATATYPES:
            item["values"] = [{"key": v["key"], "name": v["name"].strip(), "name_en": v["name_en"].strip()}
                              for v in d["values"]]
        for bound in ("min", "max"):
            if bound in d:
                item[bound] = d[bound]
        if d["datatype"] in TEXT_DATATYPES:
            item["max_length"] = d.get("max_length", DEFAULT_MAX_LENGTH[d["datatype"]])
        result.append(item)
    return result


def _clean_one(d: dict, value):
    """(cleaned value, None) or (None, error message) for one present value."""
    datatype = d["datatype"]
    if datatype in TEXT_DATATYPES:
        if not isinstance(value, str):
            return None, "Must be a string."
        limit = d.get("max_length", DEFAULT_MAX_LENGTH[datatype])
        if len(value) > limit:
            return None, f"At most {limit} characters."
        return value, None
    if datatype == "number":
        if not _is_number(value):
            return None, "Must be a finite number."
        if "min" in d and value < d["min"]:
            return None, f"Must be at least {d['min']}."
        if "max" in d and value > d["max"]:
            return None, f"Must be at most {d['max']}."
        return value, None
    if datatype == "datetime":
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None:
            return None, "Must be an ISO 8601 date and time, e.g. 2024-05-01T08:30:00+08:00."
        if moment.tzinfo is None or moment.utcoffset() is None:
            return None, "Must include a time zone (Z or +08:00)."
        try:
            return moment.astimezone(timezone.utc).isoformat(), None
        except OverflowError:  # year 1 or 9999 pushed out of range by the offset
            return None, "Out of the range of dates."
    keys = [v["key"] for v in d["values"]]
    if datatype == "singlevaluelist":
        if not isinstance(value, str) or value not in keys:
            return None, f"Must be one of {', '.join(keys)}."
        return value, None
    # multivaluelist
    if not isinstance(value, list) or not value:
        return None, "Must be a non-empty list of keys."
    if any(not isinstance(item, str) or item not in keys for item in value):
        return None, f"Every item must be one of {', '.join(keys)}."
    if len(set(value)) != len(value):
        return None, "Keys must not repeat."
    return [key for key in keys if key in value], None  # in the definition's order


def _is_blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def clean_attribute_values(defs: list[dict], values) -> tuple[dict, dict]:
    """Check a report's attribute ``values`` against the category's definitions.

    Returns ``(cleaned, errors)``; ``errors`` maps an attribute code to its messages
    (``{}`` when all is well). Null and blank values count as absent. Strings are
    stripped; numbers keep their type (int or float; booleans are not numbers);
    datetimes need a zone and come back as ISO 8601 in UTC; a multivaluelist comes back
    in the definition's order. Unknown codes are refused.
    """
    if values is None:
        values = {}
    if not isinstance(values, dict):
        return {}, {"attributes": ["Must be an object keyed by attribute code."]}
    by_code = {d["code"]: d for d in defs}
    cleaned, errors = {}, {}
    for code in values:
        if code not in by_code:
            errors[code] = ["Unknown attribute."]
    for code, d in by_code.items():
        value = values.get(code)
        if isinstance(value, str):
            value = value.strip()
        if _is_blank(value):
            if d.get("required", False):
                errors[code] = ["Required."]
            continue
        result, error = _clean_one(d, value)
        if error:
            errors[code] = [error]
        else:
            cleaned[code] = result
    return cleaned, errors


# ---------------------------------------------------------------- escalation policy

TIME_BASES = ("natural", "working")
TIME_BASIS_LABELS = {"natural": ("自然时间", "Natural time"), "working": ("工作时间", "Working time")}
MAX_STAGE_MINUTES = 366 * 24 * 60  # a year: any longer limit is a mistake

DEFAULT_POLICY = {
    "time_basis": "natural",
    "yellow_ratio": 0.75,
    "top_level": "district",
    # from this level up, a case that escalates is also dispatched at once to the department
    # of the category's kind serving the new level (None: the level's supervisors dispatch it)
    "department_from": None,
    # a case accepted (立案) at grid level goes at once to the cell's available grid worker
    # (server/domain/duty.py); none available: it waits for the supervisor, who is told
    "auto_dispatch": False,
    "levels": {
        "grid": {"ack_minutes": 60, "resolve_minutes": 1440},  # 1 h to acknowledge, 1 day to resolve
        "community": {"ack_minutes": 120, "resolve_minutes": 2880},  # 2 h, 2 days
        "street": {"ack_minutes": 240, "resolve_minutes": 4320},  # 4 h, 3 days
        "district": {"ack_minutes": 480, "resolve_minutes": 7200},  # 8 h, 5 days
        "city": {"ack_minutes": 480, "resolve_minutes": 10080},  # 8 h, 7 days
    },
}
_POLICY_KEYS = frozenset(DEFAULT_POLICY)
_STAGE_KEYS = frozenset({"ack_minutes", "resolve_minutes"})


def effective_policy(policy: dict | None) -> dict:
    """``policy`` with every missing key taken from ``DEFAULT_POLICY`` (a new dict).

    ``levels`` is taken whole: given levels replace the default levels entirely.
    """
    policy = policy or {}
    result = {key: policy.get(key, DEFAULT_POLICY[key])
              for key in ("time_basis", "yellow_ratio", "top_level", "department_from", "auto_dispatch")}
    levels = policy.get("levels", DEFAULT_POLICY["levels"])
    result["levels"] = {level: dict(levels[level]) for level in LEVELS if level in levels}
    return result


def _stage_errors(level: str, stage) -> list[str]:
    if not isinstance(stage, dict):
        return [f"levels.{level} must be an object with ack_minutes and resolve_minutes."]
    errors = []
    if set(stage) - _STAGE_KEYS:
        errors.append(f"levels.{level}: unknown fields {sorted(set(stage) - _STAGE_KEYS)}.")
    ack, resolve = stage.get("ack_minutes"), stage.get("resolve_minutes")
    if not (_is_int(ack) and 0 < ack <= MAX_STAGE_MINUTES):
        errors.append(f"levels.{level}.ack_minutes must be an integer from 1 to {MAX_STAGE_MINUTES}.")
    if not (_is_int(resolve) and 0 < resolve <= MAX_STAGE_MINUTES):
        errors.append(f"levels.{level}.resolve_minutes must be an integer from 1 to {MAX_STAGE_MINUTES}.")
    elif _is_int(ack) and resolve <= ack:
        errors.append(f"levels.{level}.resolve_minutes must be greater than ack_minutes.")
    return errors


def validate_policy(policy, start_level: str) -> list[str]:
    """Everything wrong with a category's (partial) policy ([] when it is valid).

    Checked on the effective policy: the time basis, 0 < yellow_ratio < 1, a known
    ``top_level`` at or above ``start_level``, and a stage for every level from
    ``start_level`` up to ``top_level``, each with 0 < ack_minutes < resolve_minutes.
    """
    if policy is None:
        policy = {}
    if not isinstance(policy, dict):
        return ["policy must be an object."]
    errors = []
    if set(policy) - _POLICY_KEYS:
        errors.append(f"Unknown fields {sorted(set(policy) - _POLICY_KEYS)}.")
    p = {**DEFAULT_POLICY, **policy}
    if p["time_basis"] not in TIME_BASES:
        errors.append(f"time_basis must be one of {', '.join(TIME_BASES)}.")
    ratio = p["yellow_ratio"]
    if not (_is_number(ratio) and 0 < ratio < 1):
        errors.append("yellow_ratio must be a number strictly between 0 and 1.")
    levels = p["levels"]
    if not isinstance(levels, dict) or not levels:
        return errors + ["levels must be a non-empty object keyed by level."]
    for level, stage in levels.items():
        if level not in LEVELS:
            errors.append(f"levels: unknown level {level!r} (one of {', '.join(LEVELS)}).")
        else:
            errors.extend(_stage_errors(level, stage))
    if not isinstance(p["auto_dispatch"], bool):
        errors.append("auto_dispatch must be true or false.")
    if p["department_from"] is not None and p["department_from"] not in LEVELS:
        errors.append(f"department_from must be null or one of {', '.join(LEVELS)}.")
    top = p["top_level"]
    if top not in LEVELS:
        return errors + [f"top_level must be one of {', '.join(LEVELS)}."]
    if start_level not in LEVELS:
        return errors + [f"start_level must be one of {', '.join(LEVELS)}."]
    if level_rank(top) > level_rank(start_level):
        errors.append(f"top_level {top} is below the start level {start_level}.")
    else:
        missing = [level for level in LEVELS[level_rank(top):level_rank(start_level) + 1] if level not in levels]
        if missing:
            errors.append(f"levels must cover every level from {start_level} up to {top}; missing: "
                          f"{', '.join(missing)}.")
    return errors


def stage_minutes(policy: dict | None, level: str) -> tuple[int, int]:
    """(ack_minutes, resolve_minutes) at ``level`` under the effective ``policy``.

    A level the policy does not define takes the stage of the nearest defined level
    (on a tie, the higher one). Minutes are of the policy's time basis. Raises
    ValueError for an unknown level.
    """
    rank = level_rank(level)
    levels = effective_policy(policy)["levels"]
    nearest = min(levels, key=lambda other: (abs(level_rank(other) - rank), level_rank(other)))
    stage = levels[nearest]
    return stage["ack_minutes"], stage["resolve_minutes"]


# ---------------------------------------------------------------- a category as plain data

# Category codes: 1-32 letters, digits, '_', '.' or '-' (the seed uses "01" for a group, "0101" for its leaves).
CATEGORY_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
NAME_MAX = 100
KEYWORD_MAX = 50
MAX_KEYWORDS = 30
DESCRIPTION_MAX = 2000


def category_errors(data: dict) -> dict[str, list[str]]:
    """Field errors of a category given as plain data (``{}`` when it is valid).

    Checks what a request schema would, for data that did not come through one (the
    seed file): code, names, kind, default priority, start level, department kind,
    flags, keywords, description, sort order, attribute definitions and policy (against
    the start level). Fields absent from ``data`` take the model's defaults.
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(data.get("code"), str) or not CATEGORY_CODE.fullmatch(data["code"]):
        errors["code"] = ["1-32 letters, digits, '_', '.' or '-'."]
    for field in ("name", "name_en"):
        if not _is_label(data.get(field), NAME_MAX):
            errors[field] = [f"A non-blank string of at most {NAME_MAX} characters."]
    choices = {"kind": KINDS, "default_priority": PRIORITIES, "start_level": LEVELS}
    defaults = {"default_priority": "normal", "start_level": "grid"}
    for field, allowed in choices.items():
        if data.get(field, defaults.get(field)) not in allowed:
            errors[field] = [f"Must be one of {', '.join(allowed)}."]
    if data.get("department_kind") is not None and data["department_kind"] not in DEPARTMENT_KINDS:
        errors["department_kind"] = [f"Must be one of {', '.join(DEPARTMENT_KINDS)}."]
    for field in ("requires_after_photo", "public"):
        if field in data and not isinstance(data[field], bool):
            errors[field] = ["Must be true or false."]
    keywords = data.get("keywords", [])
    if not (isinstance(keywords, list) and len(keywords) <= MAX_KEYWORDS
            and all(_is_label(k, KEYWORD_MAX) for k in keywords)):
        errors["keywords"] = [f"At most {MAX_KEYWORDS} non-blank strings of at most {KEYWORD_MAX} characters."]
    if data.get("description") is not None and not _is_label(data["description"], DESCRIPTION_MAX):
        errors["description"] = [f"A non-blank string of at most {DESCRIPTION_MAX} characters."]
    if "sort_order" in data and not (_is_int(data["sort_order"]) and 0 <= data["sort_order"] <= 1_000_000):
        errors["sort_order"] = ["An integer from 0 to 1000000."]
    attribute_errors = validate_attribute_definitions(data.get("attributes", []))
    if attribute_errors:
        errors["attributes"] = attribute_errors
    start_level = data.get("start_level", "grid")
    if start_level in LEVELS:
        policy_errors = validate_policy(data.get("policy", {}), start_level)
        if policy_errors:
            errors["policy"] = policy_errors
    return errors

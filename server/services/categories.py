"""Incident categories (事件/部件分类): the two-level taxonomy, its attributes and policies.

Every signed-in actor reads categories (phones need them offline, citizens see the
public ones through Open311); only administrators change them, since one taxonomy
serves the whole city. Categories are retired, never deleted: incidents keep theirs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exists, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, contains_eager
from sqlalchemy.orm.exc import StaleDataError

from server.domain.categories import category_errors, normalize_attribute_definitions
from server.domain.permissions import CATEGORY_MANAGE, CATEGORY_READ, Actor
from server.errors import Conflict, InvalidInput, NotFound
from server.extensions import db
from server.models import Category
from server.models._base import utcnow
from server.seed import read_categories

from .access import TERRITORY, require
from .constraints import violated_constraint
from .pagination import Page, paginate
from .versioning import commit_edit

# What PATCH may change; code and parent never change.
EDITABLE = (
    "name", "name_en", "kind", "default_priority", "start_level", "department_kind", "requires_after_photo", "public",
    "keywords", "description", "attributes", "policy", "sort_order",
)
# Model defaults of the fields a create or a seed row may leave out.
DEFAULTS = {
    "default_priority": "normal", "start_level": "grid", "department_kind": None, "requires_after_photo": False,
    "public": True, "keywords": [], "description": None, "attributes": [], "policy": {}, "sort_order": 0,
}


@dataclass
class CategoryFilter:
    parent_id: int | None = None
    kind: str | None = None
    q: str | None = None  # code, names or keywords contain
    include_retired: bool = False
    leaves_only: bool = False
    public: bool | None = None


def _not_found() -> NotFound:
    return NotFound("category.not_found", "No such category.")


def _code_taken() -> Conflict:
    return Conflict("category.code_taken", "This category code is already taken.", errors={"code": ["Already taken."]})


def _invalid_parent(reason: str) -> InvalidInput:
    return InvalidInput("category.invalid_parent", f"The parent must be a live group: {reason}",
                        errors={"parent_id": [reason]})


def _checked(values: dict) -> dict:
    """``values`` (a whole category) checked by the domain rules, with its attribute
    definitions normalised and its keywords without repeats.

    Errors: category.invalid_attributes, category.invalid_policy (field errors under
    "attributes" / "policy"), category.invalid (anything else a schema let through).
    """
    errors = category_errors(values)
    if "attributes" in errors:
        raise InvalidInput("category.invalid_attributes", "The attribute definitions are not valid; see errors.",
                           errors={"attributes": errors["attributes"]})
    if "policy" in errors:
        raise InvalidInput("category.invalid_policy", "The escalation policy is not valid; see errors.",
                           errors={"policy": errors["policy"]})
    if errors:
        raise InvalidInput("category.invalid", "The category has invalid fields; see errors.", errors=errors)
    return {**values, "attributes": normalize_attribute_definitions(values["attributes"]),
            "keywords": list(dict.fromkeys(k.strip() for k in values["keywords"]))}


# ---------------------------------------------------------------- reading

def list_categories(actor: Actor, f: CategoryFilter, page: int, page_size: int) -> Page:
    """A page of categories, each group followed by its leaves (by sort order, then code)."""
    require(actor, CATEGORY_READ, TERRITORY)
    parent = aliased(Category)
    stmt = select(Category).outerjoin(parent, Category.parent_id == parent.id).options(
        contains_eager(Category.parent.of_type(parent)))
    if not f.include_retired:
        stmt = stmt.where(Category.retired_at.is_(None))
    if f.parent_id is not None:
        stmt = stmt.where(Category.parent_id == f.parent_id)
    if f.leaves_only:
        stmt = stmt.where(Category.parent_id.is_not(None))
    if f.kind:
        stmt = stmt.where(Category.kind == f.kind)
    if f.public is not None:
        stmt = stmt.where(Category.public.is_(f.public))
    if f.q:
        pattern = "%" + f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(Category.code.ilike(pattern) | Category.name.ilike(pattern) | Category.name_en.ilike(pattern)
                          | func.array_to_string(Category.keywords, "\x1f").ilike(pattern))
    return paginate(stmt.order_by(
        func.coalesce(parent.sort_order, Category.sort_order), func.coalesce(parent.code, Category.code),
        Category.parent_id.is_not(None), Category.sort_order, Category.code,
    ), page, page_size)


def get_category(actor: Actor, category_id: int) -> Category:
    """One category, retired or not (else 404 category.not_found)."""
    require(actor, CATEGORY_READ, TERRITORY)
    category = db.session.get(Category, category_id)
    if category is None:
        raise _not_found()
    return category


# ---------------------------------------------------------------- create / change / retire

def create_category(actor: Actor, data: dict) -> Category:
    """Create a group (no ``parent_id``) or a leaf under a live group (administrators only).

    Two levels only: a leaf cannot have children. Errors: auth.forbidden,
    category.invalid_parent, category.invalid_attributes, category.invalid_policy,
    category.code_taken.
    """
    require(actor, CATEGORY_MANAGE, TERRITORY)
    parent = None
    if data.get("parent_id") is not None:
        parent = db.session.get(Category, data["parent_id"])
        if parent is None:
            raise _invalid_parent("No such category.")
        if parent.is_leaf:
            raise _invalid_parent("A leaf category cannot have children (two levels only).")
        if parent.is_retired:
            raise _invalid_parent("The group is retired.")
    values = _checked({**DEFAULTS, **{k: v for k, v in data.items() if k != "parent_id"}})
    if db.session.scalar(select(exists().where(Category.code == values["code"]))):
        raise _code_taken()
    category = Category(**values, parent=parent)
    db.session.add(category)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        if violated_constraint(exc) == "uq_categories_code":
            raise _code_taken() from None
        raise
    return category


def update_category(actor: Actor, category_id: int, changes: dict) -> Category:
    """Change a category's names, rules, attributes or policy; ``changes["version"]`` is
    the version the client read. Code and parent never change. Attribute definitions
    and the policy are replaced whole, and checked against the resulting start level.

    Errors: category.not_found, auth.forbidden, category.invalid_attributes,
    category.invalid_policy, category.version_conflict.
    """
    category = db.session.get(Category, category_id)
    if category is None:
        raise _not_found()
    require(actor, CATEGORY_MANAGE, TERRITORY)
    current = {name: getattr(category, name) for name in EDITABLE}
    edited = {name: changes[name] for name in EDITABLE if name in changes}
    checked = _checked({"code": category.code, **current, **edited})
    commit_edit(category, {"version": changes["version"], **{name: checked[name] for name in edited}}, EDITABLE,
                Conflict("category.version_conflict",
                         "The category was changed by someone else; reload it and try again."))
    return category


def retire_category(actor: Actor, category_id: int) -> Category:
    """Retire a category: no new incidents take it; it is never deleted. Retiring a group
    retires its live leaves with it (same time). Retiring twice keeps the first date.

    Errors: category.not_found, auth.forbidden, category.version_conflict.
    """
    category = db.session.get(Category, category_id)
    if category is None:
        raise _not_found()
    require(actor, CATEGORY_MANAGE, TERRITORY)
    if category.retired_at is None:
        category.retired_at = utcnow()
    if not category.is_leaf:
        # one by one, so each leaf's version moves on (phones keep the higher version)
        for leaf in db.session.scalars(select(Category).where(Category.parent_id == category.id,
                                                              Category.retired_at.is_(None))):
            leaf.retired_at = category.retired_at
    try:
        db.session.commit()
    except StaleDataError:  # edited meanwhile: retiring is idempotent, so the client may simply retry
        db.session.rollback()
        raise Conflict("category.version_conflict",
                       "The category was changed by someone else meanwhile; try again.") from None
    return category


# ---------------------------------------------------------------- the standard set

def seed_categories(path: Path | str | None = None) -> dict:
    """Upsert the categories of a seed file (default: the standard set) by code.

    The file wins over edits: every field it gives is written, except that an existing
    category keeps its parent and its retirement (seeding never un-retires; a new leaf
    of a retired group is created retired). A second run changes nothing. The whole
    file is checked first and nothing is written when any row is invalid. Concurrent
    seeds queue on an advisory lock.

    Returns ``{"groups", "leaves", "created", "updated", "unchanged"}``.
    Errors: category.invalid_seed (field errors keyed by category code).
    """
    try:
        rows = read_categories(path)
    except ValueError as exc:
        raise InvalidInput("category.invalid_seed", str(exc)) from None
    errors: dict[str, list[str]] = {}
    seen: set[str] = set()
    for row in rows:
        code = row["code"]
        row_errors = category_errors({k: v for k, v in row.items() if k != "parent_code"})
        if code in seen:
            row_errors["code"] = ["Repeated in the file."]
        seen.add(code)
        if row_errors:
            errors[code] = [f"{field}: {message}" for field, messages in row_errors.items() for message in messages]
    if errors:
        raise InvalidInput("category.invalid_seed", "The seed file has invalid categories; see errors.", errors=errors)

    db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext('fengqiao.categories.seed'))"))
    # populate_existing: compare with the rows as they are now, not as this session last saw them
    existing = {c.code: c for c in db.session.scalars(
        select(Category).where(Category.code.in_(seen)).execution_options(populate_existing=True))}
    report = {"groups": 0, "leaves": 0, "created": 0, "updated": 0, "unchanged": 0}
    for row in rows:  # groups come before their leaves
        parent_code = row.get("parent_code")
        report["leaves" if parent_code else "groups"] += 1
        values = _checked({**DEFAULTS, **{k: v for k, v in row.items() if k != "parent_code"}})
        category = existing.get(row["code"])
        if category is None:
            parent = existing[parent_code] if parent_code else None
            if parent is not None and parent.is_leaf:
                db.session.rollback()
                raise InvalidInput("category.invalid_seed",
                                   f"{parent_code} is a leaf here; it cannot take {row['code']}.",
                                   errors={row["code"]: [f"parent_code: {parent_code} is a leaf category."]})
            category = Category(**values, parent=parent, retired_at=parent.retired_at if parent else None)
            db.session.add(category)
            existing[row["code"]] = category
            report["created"] += 1
            continue
        changed = {name: values[name] for name in EDITABLE if getattr(category, name) != values[name]}
        for name, value in changed.items():
            setattr(category, name, value)
        report["updated" if changed else "unchanged"] += 1
    db.session.commit()
    return report

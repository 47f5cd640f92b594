"""A region's changes to the escalation policy (升级策略), for one category or for all.

A street office may want its own deadlines (stricter in the old town, working time
instead of natural time): an override on a region applies to every cell below it; the
deepest override wins key by key (``services.deadlines.policy_for``). Managers set them
inside their scope; the overrides take effect for stages that start after the change.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from server.domain.categories import validate_policy
from server.domain.escalation import merge_policy
from server.domain.permissions import ESCALATION_MANAGE, ESCALATION_READ, Actor
from server.domain.territory import ancestor_ids
from server.errors import InvalidInput, NotFound
from server.extensions import db
from server.models import Category, EscalationOverride, Region

from .access import authorize
from .deadlines import forget_cached_overrides, policy_for


def _region(actor: Actor, region_id: int, action: str) -> Region:
    region = db.session.get(Region, region_id)
    authorize(actor, action, region, not_found=NotFound("region.not_found", "No such region."))
    return region


def _category(code: str | None) -> Category | None:
    if code is None:
        return None
    category = db.session.scalars(select(Category).where(Category.code == code)).one_or_none()
    if category is None or category.is_retired or not category.is_leaf:
        raise InvalidInput("incident.invalid_category", "Choose a live category (a leaf, not a group).",
                           errors={"category": ["Unknown, retired or a group."]})
    return category


def overrides_applying(actor: Actor, region_id: int) -> list[EscalationOverride]:
    """The overrides on ``region_id`` and on the regions above it, from the city down."""
    region = _region(actor, region_id, ESCALATION_READ)
    order = {rid: i for i, rid in enumerate(ancestor_ids(region.path))}
    rows = db.session.scalars(select(EscalationOverride).where(EscalationOverride.region_id.in_(order)))
    return sorted(rows, key=lambda o: (order[o.region_id], o.category_id is not None, o.category_id or 0))


def effective_policy_at(actor: Actor, region_id: int, category_code: str) -> dict:
    """The policy a case of ``category_code`` gets in (the cells of) ``region_id``."""
    region = _region(actor, region_id, ESCALATION_READ)
    category = _category(category_code)
    return policy_for(category, region.path)


def set_override(actor: Actor, region_id: int, category_code: str | None, policy: dict) -> EscalationOverride:
    """Set the region's override for a category (or, without one, for every category).
    It must make a valid policy with each category it applies to. Errors: region.not_found,
    auth.forbidden, incident.invalid_category, escalation.invalid_policy."""
    region = _region(actor, region_id, ESCALATION_MANAGE)
    category = _category(category_code)
    _check(policy, [category] if category else list(db.session.scalars(select(Category).where(
        Category.parent_id.is_not(None), Category.retired_at.is_(None)))))
    row = _existing(region, category, lock=True)
    if row is None:
        row = EscalationOverride(region_id=region.id, category_id=category.id if category else None,
                                 policy=policy)
        try:
            with db.session.begin_nested():
                db.session.add(row)
        except IntegrityError:  # the same override set concurrently: update that one
            row = _existing(region, category, lock=True)
    row.policy, row.updated_by = policy, actor.user_id or None
    db.session.commit()
    forget_cached_overrides()
    return row


def clear_override(actor: Actor, region_id: int, category_code: str | None) -> None:
    """Drop the region's override for a category (or the all-categories one).
    Errors: region.not_found, auth.forbidden, escalation.no_override (404)."""
    region = _region(actor, region_id, ESCALATION_MANAGE)
    category = _category(category_code)
    row = _existing(region, category)
    if row is None:
        raise NotFound("escalation.no_override", "This region has no such override.")
    db.session.delete(row)
    db.session.commit()
    forget_cached_overrides()


def _existing(region: Region, category: Category | None, lock: bool = False) -> EscalationOverride | None:
    stmt = select(EscalationOverride).where(
        EscalationOverride.region_id == region.id,
        EscalationOverride.category_id.is_(None) if category is None else EscalationOverride.category_id == category.id)
    if lock:
        stmt = stmt.with_for_update(of=EscalationOverride)
    return db.session.scalars(stmt).one_or_none()


def _check(policy: dict, categories: list[Category]) -> None:
    """The override over each category's own policy must be a valid policy for it."""
    for category in categories:
        problems = validate_policy(merge_policy(category.policy, [policy]), category.start_level)
        if problems:
            raise InvalidInput("escalation.invalid_policy",
                               f"With this override the policy of {category.code} ({category.name}) is not valid.",
                               errors={"policy": problems})

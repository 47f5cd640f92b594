"""How a case reads to a citizen through Open311 (docs/OPEN311.md): pure rules, no I/O.

What is public: cases of public categories. Those of a personal kind (a dispute, a request
for a public service: 纠纷, 民生服务) are never listed and, read by their number, show only
their service, status and times. Of the others, what a citizen sent through Open311 is shown
as sent (point, address, description, media); a case staff reported shows its point to
about 100 m and no address or description, which may name a home or a person.

Open311 knows two statuses, ``open`` and ``closed``; mySociety's updates know a few more
(``FIXED``, ``DUPLICATE`` …). A case's timeline becomes the citizen's updates: only the
steps below, each with its public label and, for the steps that answer the citizen (the
handler's resolution, the check, a refusal), the note written with it. Internal comments,
reminders, hand-overs, extensions and mediation never leave the building.
"""
from __future__ import annotations

from .incidents import ACTION_LABELS, CLOSED_STATES

# The steps of a case a citizen is told of, and what each means as mySociety's update status.
PUBLIC_ACTIONS = {
    "report": "OPEN",
    "accept": "INVESTIGATING",
    "reject": "NO_FURTHER_ACTION",
    "merge": "DUPLICATE",
    "dispatch": "ACTION_SCHEDULED",
    "start": "IN_PROGRESS",
    "resolve": "FIXED",
    "resolve_on_spot": "FIXED",
    "verify": "CLOSED",
    "rework": "IN_PROGRESS",
    "suspend": "ACTION_SCHEDULED",
    "resume": "IN_PROGRESS",
    "escalate": "INVESTIGATING",
    "return_down": "INVESTIGATING",
    "reopen": "IN_PROGRESS",
}
# Steps whose note is written for the citizen to read.
NOTE_ACTIONS = frozenset({"reject", "resolve", "resolve_on_spot", "verify"})
# Kinds of category whose cases concern a person: never listed, nothing but status by number.
PERSONAL_KINDS = frozenset({"dispute", "service"})
# Decimals of a staff-reported case's point (3: about 100 m); a citizen's is given as sent.
STAFF_POINT_DECIMALS = 3
# Statuses a client may send with a citizen's update (the extension's, upper case).
UPDATE_STATUSES = frozenset(PUBLIC_ACTIONS.values()) | {"OPEN", "CLOSED"}

NOTICE_UNLOCATED = ("您提供的地址将由热线坐席在地图上定位，定位后立案处理；可凭 token 查询进展。",
                    "An operator will place your address on the map and the case will then be opened; "
                    "follow it with the token.")


def request_status(state: str) -> str:
    """``open`` or ``closed``: closed, rejected and merged cases are closed, every other open."""
    return "closed" if state in CLOSED_STATES else "open"


def step_text(action: str, note: str | None, english: bool, *, merged_into: int | None = None) -> str:
    """What a citizen reads of one public step: its label, and the note if it is meant for them."""
    zh, en = ACTION_LABELS[action]
    text = en if english else zh
    if action == "merge" and merged_into is not None:
        text += f" (see request {merged_into})" if english else f"（见请求 {merged_into}）"
    if note and action in NOTE_ACTIONS:
        text += f": {note}" if english else f"：{note}"
    return text

"""Tables only. Models never commit: services do, once per use case."""
from .auth import AuthSession, LoginAttempt, RefreshToken
from .exports import ExportJob
from .incidents import (
    Category, Extension, IdempotencyKey, Incident, IncidentEvent, IncidentFollower, IncidentMilestones, IncidentPhoto,
    Mediation, MediationSession, Task,
)
from .notifications import CalendarDay, EscalationOverride, HotspotAlert, Notification, OutboxAttempt, OutboxMessage
from .patrols import Patrol, PatrolCoverage, PatrolCoverageMark, PatrolPoint
from .people import Department, Device, GridAssignment, User
from .territory import Region

__all__ = [
    "AuthSession", "CalendarDay", "Category", "Department", "Device", "EscalationOverride", "ExportJob", "Extension",
    "GridAssignment", "HotspotAlert", "IdempotencyKey", "Incident", "IncidentEvent", "IncidentFollower",
    "IncidentMilestones", "IncidentPhoto", "LoginAttempt", "Mediation", "MediationSession", "Notification",
    "OutboxAttempt", "OutboxMessage", "Patrol", "PatrolCoverage", "PatrolCoverageMark", "PatrolPoint",
    "RefreshToken", "Region", "Task", "User",
]

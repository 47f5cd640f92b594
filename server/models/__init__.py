"""Tables only. Models never commit: services do, once per use case."""
from .auth import AuthSession, LoginAttempt, RefreshToken
from .campaigns import Campaign, CampaignTask
from .exports import ExportJob
from .incidents import (
    Category, Extension, IdempotencyKey, Incident, IncidentEvent, IncidentFollower, IncidentMilestones, IncidentPhoto,
    Mediation, MediationSession, Task,
)
from .notifications import CalendarDay, EscalationOverride, HotspotAlert, Notification, OutboxAttempt, OutboxMessage
from .open311 import Open311Client, Open311ReadUsage, Open311Request, Open311Update, Open311Usage
from .patrols import Patrol, PatrolCheckin, PatrolCoverage, PatrolCoverageMark, PatrolPlace, PatrolPoint
from .people import Department, Device, GridAssignment, Leave, User, WorkerDuty
from .territory import Region

__all__ = [
    "AuthSession", "CalendarDay", "Campaign", "CampaignTask",
    "Category", "Department", "Device", "EscalationOverride", "ExportJob", "Extension",
    "GridAssignment", "HotspotAlert", "IdempotencyKey", "Incident", "IncidentEvent", "IncidentFollower",
    "IncidentMilestones", "IncidentPhoto", "Leave", "LoginAttempt", "Mediation", "MediationSession", "Notification",
    "Open311Client", "Open311ReadUsage", "Open311Request", "Open311Update", "Open311Usage",
    "OutboxAttempt", "OutboxMessage", "Patrol", "PatrolCheckin", "PatrolCoverage", "PatrolCoverageMark", "PatrolPlace",
    "PatrolPoint", "RefreshToken", "Region", "Task", "User", "WorkerDuty",
]

"""Tables only. Models never commit: services do, once per use case."""
from .auth import AuthSession, LoginAttempt, RefreshToken
from .people import Department, Device, GridAssignment, User
from .territory import Region

__all__ = ["AuthSession", "Department", "Device", "GridAssignment", "LoginAttempt", "RefreshToken", "Region", "User"]

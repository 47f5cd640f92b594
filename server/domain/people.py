"""Roles (角色) and who may manage whom.

Every user has one role and one scope region. Manager roles are tied to a level of the
territory tree; a grid worker's scope is a community or a grid cell; a department
handler's scope is the region its department belongs to.
"""
from __future__ import annotations

ROLES = ("admin", "city", "district", "street", "community", "grid_worker", "department")
MANAGER_ROLES = ("city", "district", "street", "community")

ROLE_LABELS = {
    "admin": ("系统管理员", "Administrator"),
    "city": ("市级指挥中心", "City centre"),
    "district": ("区级指挥中心", "District centre"),
    "street": ("街道", "Street office"),
    "community": ("社区", "Community supervisor"),
    "grid_worker": ("网格员", "Grid worker"),
    "department": ("职能部门", "Department handler"),
}

DUTIES = ("primary", "backup")  # AB岗: A = primary (主岗), B = backup (备岗)

# What a department does, so a category can name the kind that usually takes it.
DEPARTMENT_KINDS = (
    "urban_management", "police", "judicial", "housing", "transport", "environment", "water", "utilities",
    "market_supervision", "emergency", "fire", "health", "civil_affairs", "human_resources", "education", "other",
)
DEPARTMENT_KIND_LABELS = {
    "urban_management": ("城管", "Urban management"),
    "police": ("公安派出所", "Police station"),
    "judicial": ("司法所", "Judicial office"),
    "housing": ("住建", "Housing and construction"),
    "transport": ("交通", "Transport"),
    "environment": ("生态环境", "Ecology and environment"),
    "water": ("水务", "Water"),
    "utilities": ("公用事业", "Utilities (power, gas, telecom)"),
    "market_supervision": ("市场监管", "Market supervision"),
    "emergency": ("应急管理", "Emergency management"),
    "fire": ("消防", "Fire and rescue"),
    "health": ("卫生健康", "Health"),
    "civil_affairs": ("民政", "Civil affairs"),
    "human_resources": ("人社", "Human resources and social security"),
    "education": ("教育", "Education"),
    "other": ("其他", "Other"),
}

DEVICE_PLATFORMS = ("android", "ios", "harmonyos", "web")
DEVICE_TOKEN_KINDS = ("registration_token", "installation_id")


def allowed_scope_levels(role: str) -> tuple[str, ...]:
    """Levels a user of ``role`` may have as scope region (admin: any)."""
    if role in MANAGER_ROLES:
        return (role,)
    if role == "grid_worker":
        return ("community", "grid")
    if role in ("admin", "department"):
        return ("city", "district", "street", "community", "grid")
    raise ValueError(f"unknown role {role!r}")


def outranks(manager_role: str, target_role: str) -> bool:
    """May a ``manager_role`` user create or change a ``target_role`` user?

    Admins manage everyone. A manager manages managers of strictly lower levels and
    the grid workers and department handlers inside its scope; nobody manages peers.
    """
    if manager_role == "admin":
        return True
    if manager_role not in MANAGER_ROLES:
        return False
    if target_role in ("grid_worker", "department"):
        return True
    if target_role in MANAGER_ROLES:
        return MANAGER_ROLES.index(target_role) > MANAGER_ROLES.index(manager_role)
    return False

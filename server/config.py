"""Configuration: the only module that reads ``os.environ``.

Every setting has a safe default for the embedded development set-up (a private
PostGIS cluster under ``var/pg``) and is overridden by an environment variable of the
same name prefixed ``FENGQIAO_`` (``DATABASE_URL`` keeps its conventional name).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"


def embedded_database_url(dbname: str = "fengqiao") -> str:
    """URL of a database in the embedded cluster (Unix socket in ``var/pg/run``)."""
    port = os.environ.get("PGPORT", "54329")
    return f"postgresql+psycopg://fengqiao@/{dbname}?host={VAR_DIR / 'pg' / 'run'}&port={port}"


def _normalise_url(url: str) -> str:
    # Accept the libpq spelling (postgres://, postgresql://) and use psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


MIN_SECRET_KEY_BYTES = 32


def _secret_key() -> str:
    """The signing key for access tokens.

    Production sets FENGQIAO_SECRET_KEY. Without it a random key is generated once and
    kept in ``var/secret_key`` so that every process of this checkout (gunicorn workers,
    the CLI) signs and checks tokens with the same key across restarts.
    """
    key = os.environ.get("FENGQIAO_SECRET_KEY")
    if key:
        if len(key.encode()) < MIN_SECRET_KEY_BYTES:
            # an HS256 key shorter than the hash can be guessed offline from any one token
            raise ValueError(f"FENGQIAO_SECRET_KEY must be at least {MIN_SECRET_KEY_BYTES} bytes of random text, "
                             "e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(48))'")
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def child_environment(**extra: str) -> dict[str, str]:
    """The environment of a child process (``pg_dump``, ``pg_restore``): this process's own,
    with ``extra`` (e.g. ``PGPASSWORD``, kept out of the command line that ``ps`` shows)."""
    return {**os.environ, **extra}


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _prepare_threshold() -> int | None:
    """After how many runs on a connection psycopg prepares a statement server-side (``off``:
    never, for PgBouncer before 1.22 in transaction pooling)."""
    value = os.environ.get("FENGQIAO_DB_PREPARE_THRESHOLD", "5").strip().lower()
    return None if value in ("off", "none") else int(value)


def load_config() -> dict:
    """Read the environment once and return the Flask config mapping."""
    return {
        "SQLALCHEMY_DATABASE_URI": _normalise_url(os.environ.get("DATABASE_URL") or embedded_database_url()),
        # No pre-ping (a round trip per request): a connection found dead is answered
        # with 503 and the pool is refreshed (errors.py); recycle keeps them fresh.
        # a read replica for the heavy reads that may lag (docs/OPERATIONS.md "Read replicas"):
        # the bind ``replica`` of server/extensions.py; the same engine options
        "SQLALCHEMY_BINDS": ({"replica": _normalise_url(os.environ["FENGQIAO_READ_DATABASE_URL"])}
                             if os.environ.get("FENGQIAO_READ_DATABASE_URL") else {}),
        "SQLALCHEMY_ENGINE_OPTIONS": {
            "pool_pre_ping": os.environ.get("FENGQIAO_DB_PRE_PING", "0") == "1",
            "pool_size": _int("FENGQIAO_DB_POOL_SIZE", 5),
            # connections opened beyond the pool under load (closed when given back); pool_size +
            # max_overflow is what a process may hold at once (docs/OPERATIONS.md "Scaling out")
            "max_overflow": _int("FENGQIAO_DB_MAX_OVERFLOW", 10),
            "pool_recycle": _int("FENGQIAO_DB_POOL_RECYCLE", 1800),
            "connect_args": {"prepare_threshold": _prepare_threshold()},
            # an error's text leaves out the statement's parameters (password and token hashes,
            # phone numbers): it is logged
            "hide_parameters": True,
        },
        "SECRET_KEY": _secret_key(),
        # Tokens: a short-lived signed access token and a rotating opaque refresh token.
        "ACCESS_TOKEN_TTL": _int("FENGQIAO_ACCESS_TOKEN_TTL", 15 * 60),
        "REFRESH_TOKEN_TTL": _int("FENGQIAO_REFRESH_TOKEN_TTL", 30 * 24 * 3600),
        # How long a process reuses a verified token's actor (0: check every request).
        "ACTOR_CACHE_SECONDS": _int("FENGQIAO_ACTOR_CACHE_SECONDS", 5),
        # how often `flask worker` sweeps for reminders, escalations and unacknowledged tasks
        "WORKER_INTERVAL_SECONDS": float(os.environ.get("FENGQIAO_WORKER_INTERVAL_SECONDS", 5)),
        # push delivery: a Firebase service-account JSON file (unset: pushes are only logged),
        # retries with exponential backoff (base, cap) and a bound on attempts
        "FCM_CREDENTIALS": os.environ.get("FENGQIAO_FCM_CREDENTIALS"),
        "PUSH_RETRY_BASE_SECONDS": float(os.environ.get("FENGQIAO_PUSH_RETRY_BASE_SECONDS", 2)),
        "PUSH_RETRY_CAP_SECONDS": float(os.environ.get("FENGQIAO_PUSH_RETRY_CAP_SECONDS", 300)),
        "PUSH_MAX_ATTEMPTS": _int("FENGQIAO_PUSH_MAX_ATTEMPTS", 8),
        # a worker that died between sending and recording: its pushes go out again after this
        "PUSH_LEASE_SECONDS": float(os.environ.get("FENGQIAO_PUSH_LEASE_SECONDS", 120)),
        # the map's change stream (server-sent events): how long one stream lasts before the
        # browser reconnects, how often it looks for changes, how many a web process serves
        "MAP_STREAM_SECONDS": float(os.environ.get("FENGQIAO_MAP_STREAM_SECONDS", 25)),
        "MAP_STREAM_POLL_SECONDS": float(os.environ.get("FENGQIAO_MAP_STREAM_POLL_SECONDS", 2)),
        "MAP_STREAMS_PER_PROCESS": _int("FENGQIAO_MAP_STREAMS_PER_PROCESS", 4),
        # an optional raster basemap under the map's regions: an XYZ tile URL template, the
        # coordinates its tiles are drawn in (wgs84, or gcj02 for Chinese providers) and its credit
        "MAP_BASEMAP_URL": os.environ.get("FENGQIAO_MAP_BASEMAP_URL", ""),
        "MAP_BASEMAP_CRS": os.environ.get("FENGQIAO_MAP_BASEMAP_CRS", "wgs84"),
        "MAP_BASEMAP_ATTRIBUTION": os.environ.get("FENGQIAO_MAP_BASEMAP_ATTRIBUTION", ""),
        # early warning (docs/STATS.md): how often the worker looks for hot cells, and the
        # test's window (days), past windows, significance and least count
        "HOTSPOT_CHECK_MINUTES": float(os.environ.get("FENGQIAO_HOTSPOT_CHECK_MINUTES", 60)),
        "HOTSPOT_DAYS": _int("FENGQIAO_HOTSPOT_DAYS", 7),
        "HOTSPOT_BASELINE_WINDOWS": _int("FENGQIAO_HOTSPOT_BASELINE_WINDOWS", 8),
        "HOTSPOT_ALPHA": float(os.environ.get("FENGQIAO_HOTSPOT_ALPHA", 0.01)),
        "HOTSPOT_MIN_COUNT": _int("FENGQIAO_HOTSPOT_MIN_COUNT", 3),
        # patrols (docs/FIELD.md)
        "PATROL_MAX_ACCURACY_M": float(os.environ.get("FENGQIAO_PATROL_MAX_ACCURACY_M", 50)),
        "PATROL_LATE_HOURS": float(os.environ.get("FENGQIAO_PATROL_LATE_HOURS", 48)),
        # a patrol left on this long is ended by the worker at its last point (abandoned); points
        # and tracks older than the retention are deleted (workers' location is personal data)
        "PATROL_MAX_HOURS": float(os.environ.get("FENGQIAO_PATROL_MAX_HOURS", 14)),
        "PATROL_RETENTION_DAYS": _int("FENGQIAO_PATROL_RETENTION_DAYS", 90),
        # Open311 (docs/OPEN311.md): the jurisdiction served, and what discovery says
        "OPEN311_JURISDICTION": os.environ.get("FENGQIAO_OPEN311_JURISDICTION", "fengqiao"),
        "OPEN311_CONTACT": os.environ.get("FENGQIAO_OPEN311_CONTACT", "The city's grid management centre"),
        "OPEN311_KEY_SERVICE": os.environ.get("FENGQIAO_OPEN311_KEY_SERVICE", "Keys are issued by the city's "
                                                                              "administrators"),
        # reads without a key, per client address and minute (a read with a key counts as its client's call)
        "OPEN311_READS_PER_MINUTE": _int("FENGQIAO_OPEN311_READS_PER_MINUTE", 300),
        # today's patrol coverage is computed when asked for regions of at most this many cells
        "COVERAGE_LIVE_MAX_CELLS": _int("FENGQIAO_COVERAGE_LIVE_MAX_CELLS", 2000),
        # workload: a worker holding this many open tasks is given no more automatically
        "MAX_OPEN_TASKS": _int("FENGQIAO_MAX_OPEN_TASKS", 20),
        # inspection campaigns (docs/FIELD.md): hours between the overdue reminder's stages
        # (community at the deadline, then street, then district)
        "CAMPAIGN_ESCALATE_HOURS": float(os.environ.get("FENGQIAO_CAMPAIGN_ESCALATE_HOURS", 24)),
        # export jobs (docs/STATS.md "Exports"): rows at most (Excel's sheet holds 1,048,576), how
        # long a file is kept, when a silent run is taken for dead, how often a job is tried,
        # how many a person may have queued or running
        "EXPORT_JOB_MAX_ROWS": _int("FENGQIAO_EXPORT_JOB_MAX_ROWS", 1_000_000),
        "EXPORT_RETENTION_HOURS": float(os.environ.get("FENGQIAO_EXPORT_RETENTION_HOURS", 24)),
        "EXPORT_JOB_STALE_MINUTES": float(os.environ.get("FENGQIAO_EXPORT_JOB_STALE_MINUTES", 10)),
        "EXPORT_JOB_MAX_ATTEMPTS": _int("FENGQIAO_EXPORT_JOB_MAX_ATTEMPTS", 3),
        "EXPORT_JOBS_ACTIVE_PER_USER": _int("FENGQIAO_EXPORT_JOBS_ACTIVE_PER_USER", 3),
        "PASSWORD_PROFILE": os.environ.get("FENGQIAO_PASSWORD_PROFILE", "RFC_9106_LOW_MEMORY"),
        # Login throttling: failures counted per user name and per client address.
        "LOGIN_WINDOW_SECONDS": _int("FENGQIAO_LOGIN_WINDOW_SECONDS", 15 * 60),
        "LOGIN_MAX_FAILURES_PER_USER": _int("FENGQIAO_LOGIN_MAX_FAILURES_PER_USER", 5),
        "LOGIN_MAX_FAILURES_PER_IP": _int("FENGQIAO_LOGIN_MAX_FAILURES_PER_IP", 50),
        # Request bodies: small JSON everywhere, larger uploads only where declared.
        "MAX_CONTENT_LENGTH": _int("FENGQIAO_MAX_BODY_BYTES", 1024 * 1024),
        "IMPORT_MAX_BYTES": _int("FENGQIAO_IMPORT_MAX_BYTES", 64 * 1024 * 1024),
        # a report with its photos (multipart), and one photo upload
        "REPORT_MAX_BYTES": _int("FENGQIAO_REPORT_MAX_BYTES", 41 * 1024 * 1024),
        "PHOTO_REQUEST_MAX_BYTES": _int("FENGQIAO_PHOTO_REQUEST_MAX_BYTES", 11 * 1024 * 1024),
        # Reports: how far ahead of the server's clock a phone's occurred_at may be
        "CLOCK_SKEW_SECONDS": _int("FENGQIAO_CLOCK_SKEW_SECONDS", 300),
        # Strict-Transport-Security's max-age on every answer (0: none; set it when served over HTTPS)
        "HSTS_SECONDS": _int("FENGQIAO_HSTS_SECONDS", 0),
        # Trust X-Forwarded-For from this many proxies (0 when serving directly).
        "PROXY_COUNT": _int("FENGQIAO_PROXY_COUNT", 0),
        # OpenAPI (flask-smorest); Swagger UI is served from our own static files.
        "API_TITLE": "Fengqiao grid management API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": "/static/vendor/swagger-ui/",
        "JSON_SORT_KEYS": False,
        # Photos (incident evidence)
        "PHOTO_STORE": os.environ.get("FENGQIAO_PHOTO_STORE", "local"),  # "local" or "s3"
        "PHOTO_DIR": os.environ.get("FENGQIAO_PHOTO_DIR", str(VAR_DIR / "photos")),
        "PHOTO_MAX_BYTES": _int("FENGQIAO_PHOTO_MAX_BYTES", 10 * 1024 * 1024),
        "PHOTO_MAX_PIXELS": _int("FENGQIAO_PHOTO_MAX_PIXELS", 50_000_000),
        "S3_BUCKET": os.environ.get("FENGQIAO_S3_BUCKET"),
        "S3_ENDPOINT_URL": os.environ.get("FENGQIAO_S3_ENDPOINT_URL"),  # unset for AWS itself
        "S3_REGION": os.environ.get("FENGQIAO_S3_REGION"),
        "S3_ACCESS_KEY_ID": os.environ.get("FENGQIAO_S3_ACCESS_KEY_ID"),
        "S3_SECRET_ACCESS_KEY": os.environ.get("FENGQIAO_S3_SECRET_ACCESS_KEY"),
        "S3_PREFIX": os.environ.get("FENGQIAO_S3_PREFIX", ""),
        # The zone of local clocks: EXIF times without an offset, work hours and quiet hours.
        "TIMEZONE": os.environ.get("FENGQIAO_TIMEZONE", "Asia/Shanghai"),
        # Work periods of a work day, for deadlines in working time (docs/ESCALATION.md).
        "WORK_HOURS": os.environ.get("FENGQIAO_WORK_HOURS", "08:30-12:00,13:30-17:30"),
        # where `flask demo load` writes the demo users' passwords (mode 0600)
        "DEMO_CREDENTIALS_FILE": os.environ.get("FENGQIAO_DEMO_CREDENTIALS", str(VAR_DIR / "demo-credentials.txt")),
    }

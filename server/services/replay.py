"""Replay a 311-style CSV through the HTTP API as grid workers (``flask incidents replay``).

Each row becomes one report (上报) posted to ``POST /api/v1/incidents`` by the grid worker
of the cell it falls in, exactly as a phone would send it, so the whole API path is
exercised and a re-run is idempotent: the report's ``client_uuid`` is a UUID 5 of the
row's record id, and the server answers a repeat with the first answer
(``Idempotent-Replayed: true``).

The parts that need the database (which cell and which worker, the workers' access
tokens) run in the command's app context; the posting runs in a thread pool, one
keep-alive ``requests.Session`` per thread. Rows are refused before posting for a
reason in ``REFUSALS``; the answers are counted as created, replayed, or errors by the
``code`` of the error body.
"""
from __future__ import annotations

import csv
import json
import math
import string
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from flask import current_app
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION

from server.domain.incidents import STAFF_SOURCES
from server.extensions import db
from server.models import AuthSession, Category, User
from server.models._base import utcnow

from .auth import access_token_for
from .regions import cell_at_point_sql

# Why a row is not posted, in the order they are checked.
REFUSALS = ("no_coordinates", "unmapped_type", "bad_time", "closed_before_created", "no_id", "outside_grid",
            "no_worker")
# client_uuid = uuid5(uuid5(REPLAY_NAMESPACE, mapping name), record id): stable across runs and
# machines, and two sources with the same record ids do not collide.
REPLAY_NAMESPACE = uuid.UUID("6f1d2a8e-3c5b-5e0a-9b7f-2d4c6e8a0b1c")
REPORTS_PATH = "/api/v1/incidents"
BATCH_ROWS = 500  # rows located (one SQL statement) and posted per round
COLUMN_ROLES = ("id", "type", "created", "closed", "lat", "lon", "address")
REQUIRED_ROLES = ("id", "type", "created", "lat", "lon")
DESCRIPTION_MAX = 4000  # the API's limits
ADDRESS_MAX = 300


class MappingError(ValueError):
    """The mapping file, or the CSV's header, does not fit."""


# ---------------------------------------------------------------- the mapping

@dataclass(frozen=True)
class Mapping:
    """How a CSV's columns and request types become reports (see server/seed/la311-mapping.json)."""

    name: str
    columns: dict[str, str | None]  # role (COLUMN_ROLES) → column name
    time_format: str  # strptime format of the created and closed times
    zone: ZoneInfo  # the zone of times without an offset
    description: str  # str.format template over the row's columns
    types: dict[str, str]  # request type → category code
    source: str = "phone"

    @classmethod
    def load(cls, path: str | Path) -> Mapping:
        """Read and check a mapping file. Errors: MappingError."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MappingError(f"{path}: not a readable JSON file ({exc})") from None
        if not isinstance(raw, dict):
            raise MappingError(f"{path}: expected a JSON object")
        columns = raw.get("columns") or {}
        problems = [f"columns.{role} is required" for role in REQUIRED_ROLES if not columns.get(role)]
        problems += [f"unknown column role {role!r}" for role in columns if role not in COLUMN_ROLES]
        for key in ("name", "time_format", "description"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                problems.append(f"{key} is required (a non-empty string)")
        types = raw.get("types")
        if not isinstance(types, dict) or not types or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in types.items()):
            problems.append("types must map request types to category codes")
        source = raw.get("source", "phone")
        if source not in STAFF_SOURCES:
            problems.append(f"source must be one of {', '.join(STAFF_SOURCES)}")
        try:
            zone = ZoneInfo(raw.get("timezone") or "America/Los_Angeles")
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"unknown timezone {raw.get('timezone')!r}")
            zone = None
        if problems:
            raise MappingError(f"{path}: " + "; ".join(problems))
        return cls(name=raw["name"], columns={role: columns.get(role) for role in COLUMN_ROLES},
                   time_format=raw["time_format"], zone=zone, description=raw["description"], types=types,
                   source=source)

    def check_header(self, header: list[str]) -> None:
        """Refuse a CSV that lacks a mapped column or a column of the description template."""
        wanted = [c for c in self.columns.values() if c] + _template_fields(self.description)
        missing = sorted(set(wanted) - set(header))
        if missing:
            raise MappingError(f"the CSV has no column {', '.join(missing)} (its columns: {', '.join(header)})")

    def client_uuid(self, record_id: str) -> uuid.UUID:
        return uuid.uuid5(uuid.uuid5(REPLAY_NAMESPACE, self.name), record_id)


def _template_fields(template: str) -> list[str]:
    fields = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None:
            if not name or name.isdigit() or any(c in name for c in ".[]"):
                raise MappingError(f"description: name columns, e.g. {{RequestType}} (got {{{name}}})")
            fields.append(name)
    return fields


def unknown_categories(mapping: Mapping) -> list[str]:
    """The mapped category codes that are not live leaf categories here."""
    codes = set(mapping.types.values())
    live = set(db.session.scalars(select(Category.code).where(
        Category.code.in_(codes), Category.retired_at.is_(None), Category.parent_id.is_not(None))))
    return sorted(codes - live)


# ---------------------------------------------------------------- one row

@dataclass
class Report:
    """A row ready to post, once its cell's worker is known."""

    number: int  # 1-based data row number in the file
    lon: float
    lat: float
    body: dict


def _coordinate(value: str | None, limit: float) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and abs(number) <= limit else None


def _local_time(value: str, mapping: Mapping, shift: timedelta) -> datetime:
    moment = datetime.strptime(value.strip(), mapping.time_format)
    moment = moment.replace(tzinfo=mapping.zone) if moment.tzinfo is None else moment.astimezone(mapping.zone)
    return moment + shift


def prepare_row(number: int, row: dict, mapping: Mapping, shift: timedelta = timedelta()) -> Report | str:
    """The report a CSV row makes, or the reason (one of REFUSALS) it is refused.

    ``shift`` moves the created time (occurred_at) and the closed time alike, so an old
    file can be replayed as recent reports; the same shift gives the same bodies.
    """
    col = mapping.columns
    lat, lon = _coordinate(row.get(col["lat"]), 90), _coordinate(row.get(col["lon"]), 180)
    if lat is None or lon is None or (lat == 0 and lon == 0):
        return "no_coordinates"
    category = mapping.types.get((row.get(col["type"]) or "").strip())
    if category is None:
        return "unmapped_type"
    try:
        created = _local_time(row[col["created"]], mapping, shift)
        closed_text = (row.get(col["closed"]) or "").strip() if col["closed"] else ""
        closed = _local_time(closed_text, mapping, shift) if closed_text else None
    except (ValueError, TypeError):
        return "bad_time"
    if closed is not None and closed < created:
        return "closed_before_created"
    record_id = (row.get(col["id"]) or "").strip()
    if not record_id:
        return "no_id"  # without it the report has no stable client_uuid, and a re-run would duplicate it
    cells = {key: value or "" for key, value in row.items() if key is not None}
    description = mapping.description.format_map(cells).strip()[:DESCRIPTION_MAX] or category
    address = (row.get(col["address"]) or "").strip()[:ADDRESS_MAX] if col["address"] else ""
    body = {
        "client_uuid": str(mapping.client_uuid(record_id)),
        "category": category,
        "description": description,
        "location": {"type": "Point", "coordinates": [lon, lat]},
        "occurred_at": created.isoformat(),
        "address": address or None,
        "source": mapping.source,
    }
    return Report(number=number, lon=lon, lat=lat, body=body)


# ---------------------------------------------------------------- cells and workers

# For each point: the live cell containing it (regions.cell_at_point_sql, as the report
# service locates), and who reports there: the cell's primary worker, else a backup of
# the cell, else the grid worker with the narrowest scope holding the cell. Only active grid
# workers whose scope holds the cell qualify (the API refuses anyone else's report).
_CELLS_AND_REPORTERS_SQL = text(f"""
    SELECT p.i, cell.id AS cell_id, reporter.user_id
    FROM unnest(:lons, :lats) WITH ORDINALITY AS p(lon, lat, i)
    LEFT JOIN LATERAL ({cell_at_point_sql("p.lon", "p.lat", scope=None)}) cell ON true
    LEFT JOIN LATERAL (
        SELECT u.id AS user_id
        FROM users u
        JOIN regions scope ON scope.id = u.region_id
        LEFT JOIN grid_assignments a ON a.user_id = u.id AND a.region_id = cell.id
        WHERE u.role = 'grid_worker' AND u.is_active
          AND u.region_id = ANY (string_to_array(trim(BOTH '/' FROM cell.path), '/')::int[])
        ORDER BY a.duty = 'primary' DESC NULLS LAST, a.duty IS NOT NULL DESC, length(scope.path) DESC, u.id
        LIMIT 1
    ) reporter ON true
    ORDER BY p.i
""").bindparams(bindparam("lons", type_=ARRAY(DOUBLE_PRECISION)), bindparam("lats", type_=ARRAY(DOUBLE_PRECISION)))


def cells_and_reporters(points: list[tuple[float, float]]) -> list[tuple[int | None, int | None]]:
    """(cell id, reporting worker's user id) for each (lon, lat), in one statement; None where none."""
    if not points:
        return []
    rows = db.session.execute(_CELLS_AND_REPORTERS_SQL, {
        "lons": [lon for lon, _ in points], "lats": [lat for _, lat in points]}).all()
    db.session.commit()  # end the read transaction: the command is long-lived
    return [(row.cell_id, row.user_id) for row in rows]


# ---------------------------------------------------------------- tokens

class TokenBook:
    """Access tokens for the workers a replay reports as: one short sign-in session each.

    The command has database access, so it signs tokens itself (no passwords): each
    worker gets an ``auth_sessions`` row that lives as long as one access token, and a
    token is minted again when less than a quarter of its life is left. ``revoke()``
    ends every session it opened.
    """

    def __init__(self, user_agent: str = "flask incidents replay"):
        self.user_agent = user_agent
        self._tokens: dict[int, tuple[str, float]] = {}  # user id → (token, monotonic expiry)
        self._sessions: list[uuid.UUID] = []

    def tokens_for(self, user_ids) -> dict[int, str]:
        """A fresh enough token for each of ``user_ids``; mints what is missing in one commit."""
        ttl = current_app.config["ACCESS_TOKEN_TTL"]
        now = time.monotonic()
        stale = sorted({u for u in user_ids if u not in self._tokens or self._tokens[u][1] - now < ttl / 4})
        if stale:
            expires = utcnow() + timedelta(seconds=ttl)
            for user in db.session.scalars(select(User).where(User.id.in_(stale))):
                session = AuthSession(id=uuid.uuid4(), user_id=user.id, client_ip="cli",
                                      user_agent=self.user_agent, expires_at=expires)
                db.session.add(session)
                self._sessions.append(session.id)
                self._tokens[user.id] = (access_token_for(session, user), now + ttl)
            db.session.commit()
        return {u: self._tokens[u][0] for u in user_ids}

    def revoke(self, reason: str = "replay_done") -> None:
        """End every session opened here: their tokens stop working at once."""
        if self._sessions:
            db.session.execute(update(AuthSession).where(
                AuthSession.id.in_(self._sessions), AuthSession.revoked_at.is_(None)).values(
                revoked_at=utcnow(), revoked_reason=reason).execution_options(synchronize_session=False))
            db.session.commit()
        self._sessions, self._tokens = [], {}


# ---------------------------------------------------------------- posting

@dataclass
class Outcome:
    """What became of one posted row: ``kind`` is created, replayed, error, unreachable or unsent."""

    kind: str
    code: str | None = None  # the error body's code (error), or what failed (unreachable)
    status: int | None = None


class Poster:
    """Posts reports with one keep-alive ``requests.Session`` per thread.

    A report is idempotent (its client_uuid), so a connection failure, a timeout or a 503
    is retried up to ``attempts`` times with a growing pause: a lost answer comes back as
    a replay. ``stop()`` makes every later call return ``unsent`` (the server is gone).
    """

    def __init__(self, base_url: str, timeout_s: float = 30, attempts: int = 3, pause_s: float = 0.5):
        self.url = base_url.rstrip("/") + REPORTS_PATH
        self.timeout_s, self.attempts, self.pause_s = timeout_s, attempts, pause_s
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self.stopped = threading.Event()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            with self._lock:
                self._sessions.append(session)
        return session

    def post(self, token: str, body: dict) -> Outcome:
        failure = "connection"
        for attempt in range(self.attempts):
            if self.stopped.is_set():
                return Outcome("unsent")
            if attempt:
                time.sleep(self.pause_s * 2 ** (attempt - 1))
            try:
                response = self._session().post(self.url, json=body, timeout=self.timeout_s,
                                                headers={"Authorization": f"Bearer {token}"})
            except requests.Timeout:
                failure = "timeout"
                continue
            except requests.ConnectionError:
                failure = "connection"
                continue
            if response.status_code == 503 and attempt + 1 < self.attempts:
                continue
            return _outcome(response)
        return Outcome("unreachable", code=failure)

    def stop(self) -> None:
        self.stopped.set()

    def close(self) -> None:
        for session in self._sessions:
            session.close()


def _outcome(response: requests.Response) -> Outcome:
    if response.status_code == 201:
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        return Outcome("replayed" if replayed else "created", status=201)
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        code = None
    return Outcome("error", code=code if isinstance(code, str) else f"http.{response.status_code}",
                   status=response.status_code)


# ---------------------------------------------------------------- the whole file

@dataclass
class ReplayReport:
    """The counts of one replay: every row ends in exactly one of them (``accounted()`` == ``rows``)."""

    file: str
    base_url: str
    rows: int = 0
    refused: Counter = field(default_factory=lambda: Counter({reason: 0 for reason in REFUSALS}))
    created: int = 0
    replayed: int = 0
    errors: Counter = field(default_factory=Counter)  # error code → rows
    unreachable: int = 0  # posted, but the server could not be reached (after retries)
    unsent: int = 0  # not posted: the run stopped when the server became unreachable
    server_errors: int = 0  # answers with a 5xx status (also counted in ``errors``)
    seconds: float = 0.0

    def count(self, outcome: Outcome) -> None:
        if outcome.kind in ("created", "replayed"):
            setattr(self, outcome.kind, getattr(self, outcome.kind) + 1)
        elif outcome.kind == "error":
            self.errors[outcome.code] += 1
            self.server_errors += outcome.status >= 500
        elif outcome.kind == "unreachable":
            self.unreachable += 1
        else:
            self.unsent += 1

    def accounted(self) -> int:
        return (sum(self.refused.values()) + self.created + self.replayed + sum(self.errors.values())
                + self.unreachable + self.unsent)

    @property
    def failed(self) -> bool:
        """The server was unreachable or answered 5xx: the command exits with status 1."""
        return bool(self.unreachable or self.unsent or self.server_errors)

    def as_dict(self) -> dict:
        return {"file": self.file, "base_url": self.base_url, "rows": self.rows, "refused": dict(self.refused),
                "posted": {"created": self.created, "replayed": self.replayed, "errors": dict(self.errors)},
                "unreachable": self.unreachable, "unsent": self.unsent, "server_errors": self.server_errors,
                "seconds": round(self.seconds, 3)}

    def progress_note(self) -> str:
        return (f"created {self.created}, replayed {self.replayed}, errors {sum(self.errors.values())}, "
                f"refused {sum(self.refused.values())}")


def _open_csv(path: Path):
    return path.open(newline="", encoding="utf-8-sig")  # Excel's BOM, if any, is not part of a column name


def count_rows(path: str | Path, limit: int | None = None) -> int:
    with _open_csv(Path(path)) as f:
        reader = csv.reader(f)
        next(reader, None)
        total = sum(1 for _ in reader)
    return min(total, limit) if limit else total


def replay_csv(path: str | Path, mapping: Mapping, base_url: str, *, concurrency: int = 4, limit: int | None = None,
               shift: timedelta = timedelta(), progress=None, poster: Poster | None = None) -> ReplayReport:
    """Post every row of the CSV at ``path`` (the first ``limit``) to ``base_url``; return the counts.

    ``progress(done, total, what)`` is called as rows are settled. Errors: MappingError (a
    column is missing). Rows are read, located and posted ``BATCH_ROWS`` at a time.
    """
    path = Path(path)
    report = ReplayReport(file=str(path), base_url=base_url)
    total = count_rows(path, limit)
    poster = poster or Poster(base_url)
    tokens = TokenBook()
    started = time.perf_counter()
    try:
        with _open_csv(path) as f, ThreadPoolExecutor(max_workers=concurrency) as pool:
            reader = csv.DictReader(f)
            mapping.check_header(reader.fieldnames or [])
            batch: list[Report] = []
            for number, row in enumerate(reader, 1):
                if limit and number > limit:
                    break
                report.rows += 1
                prepared = prepare_row(number, row, mapping, shift)
                if isinstance(prepared, str):
                    report.refused[prepared] += 1
                else:
                    batch.append(prepared)
                if len(batch) >= BATCH_ROWS:
                    _post_batch(batch, report, tokens, poster, pool, progress, total)
                    batch = []
                elif progress and number % 100 == 0:
                    progress(report.accounted(), total, report.progress_note())
            _post_batch(batch, report, tokens, poster, pool, progress, total)
    finally:
        poster.close()
        tokens.revoke()
        report.seconds = time.perf_counter() - started
    if progress:
        progress(report.accounted(), total, report.progress_note())
    return report


def _post_batch(batch: list[Report], report: ReplayReport, tokens: TokenBook, poster: Poster,
                pool: ThreadPoolExecutor, progress, total: int) -> None:
    if not batch:
        return
    if poster.stopped.is_set():
        report.unsent += len(batch)
        return
    located = cells_and_reporters([(r.lon, r.lat) for r in batch])
    postable = []
    for item, (cell_id, user_id) in zip(batch, located):
        if cell_id is None:
            report.refused["outside_grid"] += 1
        elif user_id is None:
            report.refused["no_worker"] += 1
        else:
            postable.append((item, user_id))
    token_of = tokens.tokens_for({user_id for _, user_id in postable})

    def post(item: Report, user_id: int) -> Outcome:
        outcome = poster.post(token_of[user_id], item.body)
        if outcome.kind == "unreachable":
            poster.stop()  # the rest would only wait for the same dead server
        return outcome

    futures = [pool.submit(post, item, user_id) for item, user_id in postable]
    for future in futures:
        report.count(future.result())
        if progress:
            progress(report.accounted(), total, report.progress_note())

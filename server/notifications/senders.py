"""Push senders: FCM through firebase-admin, or a sender that only logs (no credentials).

A sender takes ``Push``es and answers one ``PushResult`` each, in order, with what the
dispatcher must do: ``sent``, ``retry`` (later, maybe not before ``retry_after_s``),
``dead`` (the device is gone: UNREGISTERED, SENDER_ID_MISMATCH) or ``failed`` (the message
itself is refused; sending it again would not help).
"""
from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

log = logging.getLogger("fengqiao.push")

# FCM's answers that say the device no longer takes this app's messages.
DEAD_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
# Worth another try: quota, FCM overloaded or failing, APNs/web push trouble, the network.
RETRY_CODES = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL", "UNKNOWN", "THIRD_PARTY_AUTH_ERROR",
                         "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})


@dataclass(frozen=True)
class Push:
    """One message to one device, addressed by its registration token or installation id."""

    token: str
    token_kind: str  # registration_token or installation_id (devices.token_kind)
    data: dict[str, str]  # the data payload: strings only (FCM's rule)
    high_priority: bool
    expires_at: datetime  # not delivered after this: FCM's TTL


@dataclass(frozen=True)
class PushResult:
    outcome: str  # sent, retry, dead, failed
    name: str | None = None  # FCM's message name (projects/…/messages/…)
    http_status: int | None = None
    error_code: str | None = None
    retry_after_s: float | None = None
    detail: str | None = None


class PushSender(Protocol):
    name: str

    def send(self, pushes: list[Push], now: datetime) -> list[PushResult]: ...


class LoggingSender:
    """No FCM credentials: every push is written to the log and counted as sent."""

    name = "log"

    def send(self, pushes: list[Push], now: datetime) -> list[PushResult]:
        for push in pushes:
            log.info("push (not sent, no FCM credentials): %s", json.dumps(push.data, ensure_ascii=False))
        return [PushResult("sent", name=f"logged/{push.data.get('message_id', '')}") for push in pushes]


class FcmSender:
    """FCM HTTP v1 through firebase-admin (7.x): ``messaging.send_each``, at most 500 a call.

    The app is initialised from a service-account file. The library's own HTTP retries
    (urllib3, on 500/503, several seconds) are switched off: the dispatcher's backoff,
    which honours Retry-After and the message's expiry, is the only one.
    """

    name = "fcm"
    MAX_BATCH = 500

    def __init__(self, credentials_file: str, *, app_name: str = "fengqiao-push", timeout_s: float = 10):
        import firebase_admin
        from firebase_admin import credentials, messaging

        self._messaging = messaging
        try:
            self._app = firebase_admin.get_app(app_name)
        except ValueError:
            self._app = firebase_admin.initialize_app(credentials.Certificate(credentials_file),
                                                      {"httpTimeout": timeout_s}, name=app_name)
        self._service = messaging._get_messaging_service(self._app)
        _without_library_retries(self._service)
        _environment_once(self._service._client.session, self._service._fcm_url)

    def _message(self, push: Push, now: datetime):
        """firebase-admin 7 addresses an app instance by its Firebase installation id
        (``fid``); a registration token still works through ``token``, which it deprecates."""
        m = self._messaging
        ttl = max(timedelta(seconds=1), push.expires_at - now)
        if push.token_kind == "installation_id":
            target = {"fid": push.token}
        else:
            target = {"token": push.token}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Message.token is deprecated", DeprecationWarning)
            return self._build(m, target, push, ttl)

    @staticmethod
    def _build(m, target: dict, push: Push, ttl: timedelta):
        return m.Message(
            **target, data=push.data,
            android=m.AndroidConfig(priority="high" if push.high_priority else "normal", ttl=ttl,
                                    collapse_key=None),
            apns=m.APNSConfig(headers={"apns-priority": "10" if push.high_priority else "5",
                                       "apns-expiration": str(int(push.expires_at.timestamp()))},
                              payload=m.APNSPayload(aps=m.Aps(content_available=True))),
        )

    def send(self, pushes: list[Push], now: datetime) -> list[PushResult]:
        results: list[PushResult] = []
        for start in range(0, len(pushes), self.MAX_BATCH):
            chunk = pushes[start:start + self.MAX_BATCH]
            batch = self._messaging.send_each([self._message(p, now) for p in chunk], app=self._app)
            results += [_result(response) for response in batch.responses]
        return results


def _without_library_retries(service) -> None:
    """Mount adapters without retries on the service's HTTP session (firebase-admin mounts
    urllib3 retries for http(s):// and fcm.googleapis.com). Raises AttributeError if the
    library's internals moved: a test pins them."""
    import requests

    session = service._client.session
    for prefix in list(session.adapters):
        session.mount(prefix, requests.adapters.HTTPAdapter(pool_connections=100, pool_maxsize=100, max_retries=0))


def _environment_once(session, url: str) -> None:
    """requests reads the environment (proxies, CA bundle, ~/.netrc) again for every request:
    a few system calls each, which 500 threads contending for the interpreter lock pay dearly.
    Read what applies to FCM's URL once, at start, and keep it on the session."""
    settings = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    session.trust_env = False


# FCM's answers are read as untrusted input: a code is a short string or nothing, a wait is
# a finite number of seconds of at most a day (a message waiting longer expires instead).
MAX_CODE_LENGTH = 64
MAX_RETRY_AFTER_S = 24 * 3600.0


def _result(response) -> PushResult:
    if response.success:
        return PushResult("sent", name=response.message_id)
    error = response.exception
    http = getattr(error, "http_response", None)
    status = getattr(http, "status_code", None) if http is not None else None
    status = status if isinstance(status, int) else None
    code = _fcm_code(http) or _code(getattr(error, "code", None)) or type(error).__name__
    detail = str(error)[:500]
    if code in DEAD_CODES:
        return PushResult("dead", http_status=status, error_code=code, detail=detail)
    if code in RETRY_CODES or status in (429, 500, 502, 503, 504) or http is None:
        return PushResult("retry", http_status=status, error_code=code, detail=detail,
                          retry_after_s=_retry_after(http))
    return PushResult("failed", http_status=status, error_code=code, detail=detail)


def _code(value) -> str | None:
    """An error code as kept: a non-empty string of a sane length, else None."""
    return value[:MAX_CODE_LENGTH] if isinstance(value, str) and value else None


def _fcm_code(http) -> str | None:
    """FCM's own error code (details[].errorCode), else the API status (e.g. INVALID_ARGUMENT);
    None when the body is not the JSON FCM documents."""
    if http is None:
        return None
    try:
        body = http.json()
    except (ValueError, RecursionError):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and _code(detail.get("errorCode")):
            return _code(detail["errorCode"])
    return _code(error.get("status"))


def _retry_after(http) -> float | None:
    """Retry-After in seconds (delta form; an HTTP date is read as the wait until then),
    between 0 and MAX_RETRY_AFTER_S; None when absent or unreadable."""
    value = getattr(http, "headers", {}).get("Retry-After") if http is not None else None
    if not value or not isinstance(value, str):
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime
        try:
            when = parsedate_to_datetime(value)
            seconds = (when - datetime.now(when.tzinfo)).total_seconds()
        except (TypeError, ValueError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)

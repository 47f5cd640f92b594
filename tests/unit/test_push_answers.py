"""FCM's answers read as untrusted input (OWASP API10): any body, any Retry-After, gives a
push result with a short string code and a finite wait of at most a day — never an
exception that would fail the rest of the batch."""
from __future__ import annotations

import json
import math

import pytest

from server.notifications.senders import MAX_RETRY_AFTER_S, _result


class Answer:
    def __init__(self, status, headers=None, body="{}"):
        self.status_code, self.headers, self._body = status, headers or {}, body

    def json(self):
        return json.loads(self._body)


class Failure(Exception):
    def __init__(self, http, code="UNKNOWN"):
        super().__init__("failed")
        self.http_response, self.code = http, code


class Response:
    success = False

    def __init__(self, error):
        self.exception = error


@pytest.mark.parametrize("body", [
    "[]", '"text"', "null", '{"error": "text"}', '{"error": null}', '{"error": {"details": "x"}}',
    '{"error": {"details": [1, "x", {"errorCode": 5}]}}', '{"error": {"status": ["A"]}}', "not json",
    "[" * 100_000 + "]" * 100_000, json.dumps({"error": {"status": "X" * 10_000}}),
])
def test_any_body_is_a_result(body):
    result = _result(Response(Failure(Answer(503, body=body))))
    assert result.outcome == "retry" and isinstance(result.error_code, str) and len(result.error_code) <= 64


def test_fcms_own_code_is_read_when_it_is_there():
    body = json.dumps({"error": {"status": "NOT_FOUND", "details": [{"errorCode": "UNREGISTERED"}]}})
    assert _result(Response(Failure(Answer(404, body=body)))).outcome == "dead"


@pytest.mark.parametrize(("header", "wait"), [
    ("120", 120), ("-5", 0), ("1e999", MAX_RETRY_AFTER_S), ("99999999999999", MAX_RETRY_AFTER_S),
    ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_S), ("Mon, 01 Jan 0001 00:00:00 GMT", 0),
    ("nan", None), ("soon", None), ("", None),
])
def test_a_retry_after_is_a_finite_wait_of_a_day_at_most(header, wait):
    result = _result(Response(Failure(Answer(429, {"Retry-After": header}), "QUOTA_EXCEEDED")))
    assert result.outcome == "retry"
    if wait is None:
        assert result.retry_after_s is None
    else:
        assert math.isfinite(result.retry_after_s) and result.retry_after_s == pytest.approx(wait)

"""Fixtures for push delivery: a fake FCM on loopback and an FCM sender pointed at it."""
from __future__ import annotations

import uuid

import firebase_admin
import pytest
from firebase_admin import messaging
from google.auth import credentials as google_credentials

from server.notifications.senders import FcmSender
from tests.fakefcm import FakeFcm


@pytest.fixture
def fake():
    server = FakeFcm()
    yield server
    server.close()


@pytest.fixture
def sender(fake, tmp_path, monkeypatch):
    """The real FcmSender (firebase-admin, google-auth) sending to ``fake``: FCM's URL is the
    fake's, and the service account's token_uri is too."""
    monkeypatch.setattr(messaging._MessagingService, "FCM_URL", fake.url + "/v1/projects/{0}/messages:send")
    # google-auth looks up a "regional access boundary" at iamcredentials.googleapis.com in
    # the background after each token refresh; the tests reach loopback only.
    monkeypatch.setattr(google_credentials.CredentialsWithRegionalAccessBoundary,
                        "_is_regional_access_boundary_lookup_required", lambda self: False)
    push = FcmSender(str(fake.service_account(tmp_path)), app_name=f"test-{uuid.uuid4()}")
    yield push
    firebase_admin.delete_app(push._app)

"""Our signatures, checked by the off-the-shelf `standardwebhooks` library: valid, tampered, stale, rotated."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from appliance.events.dispatcher import backoff_s, body_of
from appliance.events.settings import WebhookSettings
from appliance.events.signing import new_secret, secret_key, signature_header


def headers_for(secrets: list[str], msg_id: str, ts: int, body: bytes) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": signature_header([secret_key(s) for s in secrets], msg_id, ts, body)}


def test_secret_has_the_spec_form() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    assert new_secret() != secret


def test_a_delivery_verifies_with_the_library_and_tampering_fails() -> None:
    secret = new_secret()
    body = body_of("user.created", "2026-12-01T10:00:00.000Z", '{"user":{"id":1}}')
    headers = headers_for([secret], "msg_abc", int(time.time()), body)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == {"type": "user.created", "timestamp": "2026-12-01T10:00:00.000Z",
                                                      "data": {"user": {"id": 1}}}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b'"id":1', b'"id":2'), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_other"})
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_a_stale_or_future_timestamp_fails() -> None:
    secret = new_secret()
    body = b'{"type":"x","timestamp":"t","data":{}}'
    for skew in (-6 * 60, 6 * 60):
        headers = headers_for([secret], "msg_1", int(time.time()) + skew, body)
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(body, headers)


def test_during_rotation_both_secrets_verify() -> None:
    old, new = new_secret(), new_secret()
    body = b'{"type":"x","timestamp":"t","data":{}}'
    headers = headers_for([new, old], "msg_2", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    settings = WebhookSettings(retry_initial_s=1.0, retry_max_interval_s=60.0)
    first = [backoff_s(settings, 1) for _ in range(200)]
    assert all(0.5 <= d <= 1.0 for d in first) and len(set(first)) > 1
    assert all(4.0 <= backoff_s(settings, 4) <= 8.0 for _ in range(50))
    assert all(30.0 <= backoff_s(settings, 30) <= 60.0 for _ in range(50))

"""Pushing the outbox: claim due deliveries, post them to their devices, record what happened.

`flask notifications deliver` runs claim → commit → send each → record → commit, in a loop.

- Claiming marks up to a batch of due deliveries (not delivered, `next_attempt_at` passed, no
  live lease) with a lease (`claimed_until`) and counts the attempt, in one UPDATE over a
  `SELECT … FOR UPDATE SKIP LOCKED`, then commits: two deliverers never take the same row, and
  a row stays taken while it is being sent. A deliverer that dies leaves its leases to expire;
  the rows are then due again and another run sends them. Nothing is lost; what may happen is
  that a push whose answer was lost with the deliverer is sent again, with the same
  idempotency key, which is why receivers must drop keys they already have.
- Once a device answered 2xx, `delivered_at` is set and that (notification, device) is never
  sent again. 404 or 410 means the subscription is gone: the device is removed, and its
  deliveries with it. Anything else (another status, a timeout, a refused connection) is retried
  after `backoff × 2^(attempts-1)`, at most `backoff_max`, until `max_attempts`, after which
  the delivery is given up (`next_attempt_at` NULL, `last_error` says why).
- Web Push (pywebpush): the same JSON body, encrypted for the subscription (aes128gcm) and
  posted to its endpoint with a VAPID signature; the phone's service worker drops keys it
  already showed. A push service's 404/410 means the subscription expired or was revoked.
- The webhook is a POST of JSON with `X-Gridgov-Signature: t=<unix seconds>,v1=<hex>`, the
  HMAC-SHA256 under the device's secret of `<t>.<body>`, and `Idempotency-Key`. Redirects are
  not followed: a gateway answering 3xx fails the attempt instead of sending the body on.
"""

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta

import pywebpush
import requests
from py_vapid import Vapid02, VapidException
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from gridgov.models import Delivery, Device, Notification

SIGNATURE_HEADER = "X-Gridgov-Signature"
# How long a push service keeps a push for a phone that is offline.
WEBPUSH_TTL_SECONDS = 24 * 3600
GONE_STATUSES = (404, 410)


@dataclass(frozen=True)
class Job:
    """One claimed delivery, with everything needed to send it."""

    delivery_id: int
    attempt: int
    device_id: int
    kind: str
    url: str
    secret: str | None
    push_keys: dict | None
    key: str
    body: bytes


@dataclass(frozen=True)
class WebPush:
    """The application server's VAPID identity (RFC 8292)."""

    vapid: Vapid02
    subject: str

    @classmethod
    def from_key(cls, private_key: str, subject: str) -> "WebPush":
        """The identity of a base64url VAPID private key (raw or DER)."""
        return cls(vapid=Vapid02.from_string(private_key=private_key), subject=subject)


@dataclass(frozen=True)
class Outcome:
    delivered: bool = False
    gone: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Retry:
    backoff: timedelta
    backoff_max: timedelta
    max_attempts: int

    def next_attempt(self, attempt: int, now: datetime) -> datetime | None:
        """When to try again after failed attempt number `attempt`; None: give up."""
        if attempt >= self.max_attempts:
            return None
        return now + min(self.backoff * 2 ** (attempt - 1), self.backoff_max)


def claim(session: Session, *, now: datetime, lease: timedelta, limit: int) -> list[Job]:
    """Take up to `limit` due deliveries for `lease`, counting an attempt on each."""
    due = (
        select(Delivery.id)
        .where(
            Delivery.delivered_at.is_(None),
            Delivery.next_attempt_at <= now,
            or_(Delivery.claimed_until.is_(None), Delivery.claimed_until <= now),
        )
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(due.scalar_subquery()))
        .values(claimed_until=now + lease, attempts=Delivery.attempts + 1)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    ).scalars()
    ids = list(claimed)
    if not ids:
        return []
    rows = session.execute(
        select(Delivery, Device, Notification)
        .join(Device, Device.id == Delivery.device_id)
        .join(Notification, Notification.id == Delivery.notification_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
        .execution_options(populate_existing=True)
    ).all()
    return [_job(*row) for row in rows]


def delivery_key(notification: Notification, device_id: int) -> str:
    """The idempotency key of one notification to one device."""
    return f"{notification.idempotency_key}/device:{device_id}"


def _job(delivery: Delivery, device: Device, notification: Notification) -> Job:
    key = delivery_key(notification, device.id)
    body = {
        "idempotency_key": key,
        "device": device.id,
        "user": notification.user_id,
        "notification": {
            "id": notification.id,
            "kind": notification.kind,
            "incident": notification.incident_id,
            "assignment": notification.assignment_id,
            "payload": notification.payload,
            "created_at": notification.created_at.isoformat(),
        },
    }
    return Job(
        delivery_id=delivery.id,
        attempt=delivery.attempts,
        device_id=device.id,
        kind=device.kind,
        url=device.url,
        secret=device.secret,
        push_keys=device.push_keys,
        key=key,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
    )


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def send(job: Job, *, timeout: float, webpush: WebPush | None = None) -> Outcome:
    """Push one job to its device; what the device (or its push service) answered."""
    if job.kind == "webpush":
        if webpush is None:
            return Outcome(error="Web Push is not configured (GRIDGOV_VAPID_PRIVATE_KEY)")
        return _send_webpush(job, timeout=timeout, webpush=webpush)
    return _send_webhook(job, timeout=timeout)


def _send_webhook(job: Job, *, timeout: float) -> Outcome:
    request = urllib.request.Request(
        job.url,
        data=job.body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": job.key,
            SIGNATURE_HEADER: sign(job.secret, int(time.time()), job.body),
        },
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (OSError, ValueError) as error:  # refused, timed out, unreachable, bad URL
        return Outcome(error=f"{type(error).__name__}: {error}"[:500])
    return _answered(status)


def _answered(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome(delivered=True)
    if status in GONE_STATUSES:
        return Outcome(gone=True, error=f"HTTP {status}")
    return Outcome(error=f"HTTP {status}")


class _NoRedirectSession(requests.Session):
    def request(self, *args, **kwargs):
        kwargs["allow_redirects"] = False
        return super().request(*args, **kwargs)


def _send_webpush(job: Job, *, timeout: float, webpush: WebPush) -> Outcome:
    """Encrypt the body for the subscription (aes128gcm, RFC 8291) and post it, VAPID signed."""
    subscription = {"endpoint": job.url, "keys": job.push_keys}
    with _NoRedirectSession() as session:
        try:
            response = pywebpush.webpush(
                subscription,
                data=job.body,
                vapid_private_key=webpush.vapid,
                vapid_claims={"sub": webpush.subject},
                ttl=WEBPUSH_TTL_SECONDS,
                timeout=timeout,
                headers={"Urgency": "high"},
                requests_session=session,
            )
        except pywebpush.WebPushException as error:
            if error.response is None:
                return Outcome(error=f"WebPushException: {error}"[:500])
            return _answered(error.response.status_code)
        except (requests.RequestException, VapidException, ValueError) as error:
            return Outcome(error=f"{type(error).__name__}: {error}"[:500])
    return _answered(response.status_code)


def record(session: Session, job: Job, outcome: Outcome, *, now: datetime, retry: Retry) -> None:
    """Store what sending `job` gave: delivered, device removed, or a retry scheduled."""
    if outcome.gone:
        session.execute(delete(Device).where(Device.id == job.device_id))
        return
    values: dict = {"claimed_until": None, "last_error": outcome.error}
    if outcome.delivered:
        values |= {"delivered_at": now, "next_attempt_at": None}
    else:
        values["next_attempt_at"] = retry.next_attempt(job.attempt, now)
    session.execute(
        update(Delivery)
        .where(Delivery.id == job.delivery_id, Delivery.delivered_at.is_(None))
        .values(**values)
        .execution_options(synchronize_session=False)
    )

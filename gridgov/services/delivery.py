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

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from gridgov.models import Delivery, Device, Notification

SIGNATURE_HEADER = "X-Gridgov-Signature"
GONE_STATUSES = (404, 410)


@dataclass(frozen=True)
class Job:
    """One claimed delivery, with everything needed to send it."""

    delivery_id: int
    attempt: int
    device_id: int
    url: str
    secret: str
    key: str
    body: bytes


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
        url=device.url,
        secret=device.secret,
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


def send(job: Job, *, timeout: float) -> Outcome:
    """Post one job's body to its webhook, signed; what the device answered."""
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
    if 200 <= status < 300:
        return Outcome(delivered=True)
    if status in GONE_STATUSES:
        return Outcome(gone=True, error=f"HTTP {status}")
    return Outcome(error=f"HTTP {status}")


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

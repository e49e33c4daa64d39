"""Pushing the outbox to a real local HTTP receiver: signatures, retries with backoff, dead
devices, leases, and `flask notifications deliver` killed mid-run and run twice at once."""

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import delete, func, select

from config import ConfigError, load_config
from gridgov.extensions import db
from gridgov.models import Delivery, Device, Notification, User
from gridgov.services import delivery, notifications
from gridgov.services.delivery import Retry, WebPush
from gridgov.settings import build_settings
from tests.factories import make_user

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GATEWAYS = ("http://127.0.0.1:",)
LEASE = timedelta(seconds=60)


def _lower(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


class Receiver:
    """A push gateway adapter on the loopback: answers `status` (per path), records requests."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = {"/ok": 200, "/gone": 410, "/missing": 404, "/fail": 500, "/moved": 302}
        self.delay = 0.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.requests.append(
                        {"path": self.path, "headers": _lower(self.headers), "body": body}
                    )
                self.send_response(receiver.status.get(self.path, 200))
                if self.path == "/moved":
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def keys(self) -> list[str]:
        with self.lock:
            return [r["headers"]["idempotency-key"] for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    running = Receiver()
    yield running
    running.close()


def device_at(session, user, url: str) -> Device:
    view = notifications.register_device(
        session, user=user, kind="webhook", url=url, gateways=GATEWAYS
    )
    return session.get(Device, view.id)


RETRY = Retry(timedelta(seconds=10), timedelta(seconds=60), 4)


def run_once(session, now, retry=RETRY):
    """One claim and the sends and records of what it claimed, as the deliverer does."""
    jobs = delivery.claim(session, now=now, lease=LEASE, limit=100)
    outcomes = []
    for job in jobs:
        outcome = delivery.send(job, timeout=5)
        delivery.record(session, job, outcome, now=now, retry=retry)
        outcomes.append(outcome)
    session.expire_all()
    return outcomes


def test_a_push_is_signed_carries_its_key_and_is_sent_once(db_session, receiver):
    user = make_user(db_session, username="d_signed")
    device = device_at(db_session, user, receiver.url("/ok"))
    note = notifications.notify(
        db_session, user_id=user.id, kind="dispatched", key="sig-1", payload={"a": "派遣"}
    )
    sent_at = time.time()
    [outcome] = run_once(db_session, datetime.now(UTC))
    assert outcome.delivered
    [request] = receiver.requests
    body = request["body"]
    stamp, signature = (
        part.split("=", 1)[1] for part in request["headers"]["x-gridgov-signature"].split(",")
    )
    expected = hmac.new(device.secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(signature, expected.hexdigest())
    assert abs(int(stamp) - sent_at) < 5
    payload = json.loads(body)
    assert payload["idempotency_key"] == request["headers"]["idempotency-key"]
    assert payload["idempotency_key"] == f"sig-1/device:{device.id}"
    assert payload["notification"]["id"] == note
    assert payload["notification"]["payload"] == {"a": "派遣"}
    row = db_session.scalar(select(Delivery).where(Delivery.notification_id == note))
    assert row.delivered_at is not None and row.attempts == 1 and row.claimed_until is None
    # Acknowledged: never sent again, however late the next run.
    assert run_once(db_session, datetime.now(UTC) + timedelta(days=1)) == []
    assert len(receiver.requests) == 1


def test_failures_back_off_then_give_up(db_session, receiver):
    user = make_user(db_session, username="d_backoff")
    device_at(db_session, user, receiver.url("/fail"))
    note = notifications.notify(
        db_session, user_id=user.id, kind="dispatched", key="bo", payload={}
    )
    now = datetime.now(UTC)
    waits = []
    for attempt in range(1, 5):
        [outcome] = run_once(db_session, now)
        assert outcome.error == "HTTP 500"
        row = db_session.scalar(select(Delivery).where(Delivery.notification_id == note))
        assert (row.attempts, row.last_error, row.delivered_at) == (attempt, "HTTP 500", None)
        if row.next_attempt_at is None:
            break
        waits.append(row.next_attempt_at - now)
        # Not due a moment before its time.
        assert run_once(db_session, row.next_attempt_at - timedelta(seconds=1)) == []
        now = row.next_attempt_at
    assert waits == [timedelta(seconds=s) for s in (10, 20, 40)]
    assert row.attempts == 4 and row.next_attempt_at is None  # given up
    assert run_once(db_session, now + timedelta(days=1)) == []


def test_a_refused_connection_or_a_redirect_is_retried(db_session, receiver):
    user = make_user(db_session, username="d_refused")
    device_at(db_session, user, "http://127.0.0.1:9/closed")
    device_at(db_session, user, receiver.url("/moved"))
    notifications.notify(db_session, user_id=user.id, kind="dispatched", key="rf", payload={})
    outcomes = run_once(db_session, datetime.now(UTC))
    assert sorted(o.error.split(":")[0] for o in outcomes) == ["HTTP 302", "URLError"]
    # The redirect was not followed.
    assert [r["path"] for r in receiver.requests] == ["/moved"]


@pytest.mark.parametrize("path", ["/gone", "/missing"])
def test_a_device_answering_410_or_404_is_removed(db_session, receiver, path):
    user = make_user(db_session, username="d_gone")
    dead = device_at(db_session, user, receiver.url(path))
    alive = device_at(db_session, user, receiver.url("/ok"))
    for i in range(2):
        notifications.notify(
            db_session, user_id=user.id, kind="dispatched", key=f"g{i}", payload={}
        )
    run_once(db_session, datetime.now(UTC))
    assert db_session.get(Device, dead.id) is None
    assert db_session.get(Device, alive.id) is not None
    left = db_session.scalars(select(Delivery.device_id)).all()
    assert dead.id not in left
    # A new notification goes only to the device that is left.
    notifications.notify(db_session, user_id=user.id, kind="dispatched", key="g9", payload={})
    assert all(o.delivered for o in run_once(db_session, datetime.now(UTC)))


def test_a_claim_is_held_for_its_lease_then_retried(db_session, receiver):
    user = make_user(db_session, username="d_lease")
    device_at(db_session, user, receiver.url("/ok"))
    notifications.notify(db_session, user_id=user.id, kind="dispatched", key="ls", payload={})
    now = datetime.now(UTC)
    [job] = delivery.claim(db_session, now=now, lease=LEASE, limit=10)
    # The deliverer holding it died: nobody else takes it while the lease runs...
    assert (
        delivery.claim(db_session, now=now + LEASE - timedelta(seconds=1), lease=LEASE, limit=10)
        == []
    )
    # ...and after it, the next run does, counting a second attempt.
    [again] = delivery.claim(db_session, now=now + LEASE, lease=LEASE, limit=10)
    assert (again.delivery_id, again.attempt, again.key) == (job.delivery_id, 2, job.key)


def test_deliveries_are_written_only_for_devices_registered_by_then(db_session):
    user = make_user(db_session, username="d_later")
    notifications.notify(db_session, user_id=user.id, kind="dispatched", key="before", payload={})
    device_at(db_session, user, "http://127.0.0.1:9/x")
    notifications.notify(db_session, user_id=user.id, kind="dispatched", key="after", payload={})
    counted = db_session.execute(
        select(Notification.idempotency_key, func.count(Delivery.id))
        .outerjoin(Delivery, Delivery.notification_id == Notification.id)
        .where(Notification.user_id == user.id)
        .group_by(Notification.idempotency_key)
    ).all()
    assert dict(counted) == {"before": 0, "after": 1}


# --- Web Push ---------------------------------------------------------------------------------


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def vapid_key() -> str:
    """A fresh VAPID private key, as GRIDGOV_VAPID_PRIVATE_KEY holds it (raw, base64url)."""
    private = ec.generate_private_key(ec.SECP256R1())
    return b64(private.private_numbers().private_value.to_bytes(32, "big"))


class Browser:
    """A browser's push subscription: its key pair and auth secret, as PushManager makes them."""

    def __init__(self, endpoint: str) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        public = self.private.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )
        self.endpoint = endpoint
        self.keys = {"p256dh": b64(public), "auth": b64(self.auth)}

    def decrypt(self, body: bytes) -> dict:
        return json.loads(http_ece.decrypt(body, private_key=self.private, auth_secret=self.auth))


def check_vapid(authorization: str, *, audience: str, subject: str) -> None:
    """The Authorization header is a VAPID JWT (ES256) for `audience`, signed by its key `k`."""
    scheme, _, params = authorization.partition(" ")
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert scheme == "vapid"
    head, claims, signature = fields["t"].split(".")
    raw = unb64(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(fields["k"]))
    public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    decoded = json.loads(unb64(claims))
    assert (decoded["aud"], decoded["sub"]) == (audience, subject)
    assert decoded["exp"] > time.time()


def test_a_web_push_is_encrypted_for_the_subscription_and_vapid_signed(db_session, receiver):
    receiver.status["/wp"] = 201
    user = make_user(db_session, username="d_webpush")
    browser = Browser(receiver.url("/wp"))
    view = notifications.register_device(
        db_session,
        user=user,
        kind="webpush",
        url=browser.endpoint,
        push_keys=browser.keys,
        gateways=GATEWAYS,
        webpush_enabled=True,
    )
    assert view.secret is None
    notifications.notify(
        db_session, user_id=user.id, kind="dispatched", key="wp-1", payload={"note": "派遣"}
    )
    webpush = WebPush.from_key(vapid_key(), "mailto:ops@example.org")
    [job] = delivery.claim(db_session, now=datetime.now(UTC), lease=LEASE, limit=10)
    outcome = delivery.send(job, timeout=5, webpush=webpush)
    assert outcome.delivered, outcome
    [request] = receiver.requests
    headers = request["headers"]
    assert headers["content-encoding"] == "aes128gcm" and int(headers["ttl"]) > 0
    check_vapid(
        headers["authorization"],
        audience=f"http://127.0.0.1:{receiver.server.server_port}",
        subject="mailto:ops@example.org",
    )
    pushed = browser.decrypt(request["body"])
    assert pushed["idempotency_key"] == f"wp-1/device:{view.id}"
    assert pushed["notification"]["payload"] == {"note": "派遣"}


def test_an_expired_subscription_is_removed_and_no_key_is_a_retry(db_session, receiver):
    user = make_user(db_session, username="d_wp_gone")
    expired = Browser(receiver.url("/gone"))
    device = notifications.register_device(
        db_session,
        user=user,
        kind="webpush",
        url=expired.endpoint,
        push_keys=expired.keys,
        gateways=GATEWAYS,
        webpush_enabled=True,
    )
    notifications.notify(db_session, user_id=user.id, kind="dispatched", key="wp-g", payload={})
    [job] = delivery.claim(db_session, now=datetime.now(UTC), lease=LEASE, limit=10)
    # A deliverer started without a VAPID key cannot send it: retried, not lost.
    assert "not configured" in delivery.send(job, timeout=5).error
    outcome = delivery.send(job, timeout=5, webpush=WebPush.from_key(vapid_key(), "mailto:x@y.z"))
    assert outcome.gone
    delivery.record(db_session, job, outcome, now=datetime.now(UTC), retry=RETRY)
    assert db_session.get(Device, device.id) is None


@pytest.mark.parametrize(
    ("key", "subject", "variable"),
    [
        ("not-a-key", "mailto:ops@example.org", "GRIDGOV_VAPID_PRIVATE_KEY"),
        (None, "", "GRIDGOV_VAPID_SUBJECT"),
        (None, "ops@example.org", "GRIDGOV_VAPID_SUBJECT"),
        (None, "https://example.org/a/path", "GRIDGOV_VAPID_SUBJECT"),
    ],
)
def test_a_vapid_setting_that_cannot_be_used_stops_the_app(key, subject, variable):
    config = load_config("test")
    config.update(VAPID_PRIVATE_KEY=key or vapid_key(), VAPID_SUBJECT=subject)
    with pytest.raises(ConfigError, match=variable):
        build_settings(config)


# --- the deliverer as a process ---------------------------------------------------------------


@pytest.fixture
def committed(app):
    """A user with committed notifications and devices (the deliverer runs in another process);
    everything removed afterwards."""
    made = []

    def make(devices: list, count: int) -> User:
        with app.app_context():
            user = make_user(db.session, username=f"d_proc_{len(made)}_{os.getpid()}")
            for device in devices:
                if isinstance(device, Browser):
                    notifications.register_device(
                        db.session,
                        user=user,
                        kind="webpush",
                        url=device.endpoint,
                        push_keys=device.keys,
                        gateways=GATEWAYS,
                        webpush_enabled=True,
                    )
                else:
                    device_at(db.session, user, device)
            for i in range(count):
                notifications.notify(
                    db.session, user_id=user.id, kind="dispatched", key=f"{user.id}-{i}", payload={}
                )
            db.session.commit()
            made.append(user.id)
            return db.session.get(User, user.id)

    yield make
    with app.app_context():
        for user_id in made:
            db.session.execute(delete(Notification).where(Notification.user_id == user_id))
            db.session.execute(delete(Device).where(Device.user_id == user_id))
            db.session.execute(delete(User).where(User.id == user_id))
        db.session.commit()


def deliverer(app, *args: str, lease: int = 60, **variables: str) -> subprocess.Popen:
    env = {
        **os.environ,
        **variables,
        "GRIDGOV_ENV": "test",
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "GRIDGOV_DELIVERY_LEASE_SECONDS": str(lease),
        "GRIDGOV_DELIVERY_POLL_SECONDS": "0.2",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "notifications", "deliver", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def undelivered(app, user_id: int) -> int:
    with app.app_context():
        count = db.session.scalar(
            select(func.count())
            .select_from(Delivery)
            .join(Notification, Notification.id == Delivery.notification_id)
            .where(Notification.user_id == user_id, Delivery.delivered_at.is_(None))
        )
        db.session.remove()
        return count


def wait_for(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_killed_mid_run_and_run_twice_every_push_arrives_once_per_key(app, receiver, committed):
    receiver.delay = 0.01
    user = committed([receiver.url("/ok"), receiver.url("/ok?second")], count=150)
    expected = {
        f"{user.id}-{i}/device:{device.id}" for i in range(150) for device in _devices(app, user)
    }
    first = deliverer(app, "--batch", "20", lease=2)
    second = deliverer(app, "--batch", "20", lease=2)
    wait_for(lambda: len(receiver.requests) >= 60, 60)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    restarted = deliverer(app, "--batch", "20", lease=2)
    wait_for(lambda: undelivered(app, user.id) == 0, 90)
    for process in (second, restarted):
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
        assert process.returncode == 0, output
        assert "delivered" in output
    counts = Counter(receiver.keys())
    assert set(counts) == expected  # nothing lost
    # Sent twice only what the killed deliverer had claimed and not recorded (one batch at
    # most); acknowledged pushes never again. Receivers drop those by key.
    duplicated = sum(n - 1 for n in counts.values())
    assert duplicated <= 20, counts.most_common(5)


def _devices(app, user) -> list[Device]:
    with app.app_context():
        devices = db.session.scalars(select(Device).where(Device.user_id == user.id)).all()
        db.session.expunge_all()
        return devices


def test_once_delivers_what_is_due_and_exits(app, receiver, committed):
    user = committed([receiver.url("/ok")], count=5)
    done = deliverer(app, "--once")
    output, _ = done.communicate(timeout=60)
    assert done.returncode == 0, output
    assert "notifications: 5 delivered, 0 failed, 0 devices gone" in output
    assert undelivered(app, user.id) == 0 and len(receiver.requests) == 5


def test_the_deliverer_web_pushes_with_its_vapid_key(app, receiver, committed):
    receiver.status["/wp"] = 201
    browser = Browser(receiver.url("/wp"))
    user = committed([browser], count=2)
    done = deliverer(
        app,
        "--once",
        GRIDGOV_VAPID_PRIVATE_KEY=vapid_key(),
        GRIDGOV_VAPID_SUBJECT="https://gridgov.example.org",
    )
    output, _ = done.communicate(timeout=60)
    assert "notifications: 2 delivered, 0 failed" in output, output
    pushed = sorted(browser.decrypt(r["body"])["idempotency_key"] for r in receiver.requests)
    assert [key.split("/")[0] for key in pushed] == [f"{user.id}-0", f"{user.id}-1"]


def test_sigterm_stops_the_loop_cleanly(app):
    running = deliverer(app)
    assert running.stdout.readline().startswith("notifications: delivering")
    running.send_signal(signal.SIGTERM)
    output, _ = running.communicate(timeout=20)
    assert running.returncode == 0, output
    assert "notifications: 0 delivered" in output
